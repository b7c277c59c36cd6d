"""Entries: the ways into an x86 kernel, read from entries.toml."""
from __future__ import annotations

import fnmatch
import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path

ENTRIES_FILE = Path(__file__).with_name("entries.toml")

# Placeholders that are strings of the entry itself rather than staged files.
STRING_FIELDS = ("cmdline", "hypervisor_cmdline")


class QemuArgs(string.Formatter):
    """Fills an entry's QEMU argument templates; ":opt" doubles commas for QEMU option values."""

    def format_field(self, value, format_spec):
        if format_spec == "opt":
            return str(value).replace(",", ",,")
        return super().format_field(value, format_spec)


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    qemu: tuple[str, ...]
    machine: str
    cpu: str
    memory_mb: int
    cmdline: str
    hypervisor_cmdline: str
    timeout: float
    silence: float
    writable: tuple[str, ...]
    experimental: bool
    paths: tuple[str, ...]
    typical_seconds: float
    milestone: str | None = None

    @property
    def files(self) -> list[str]:
        """The staged files this entry boots, by placeholder name, in order of use."""
        names = []
        for arg in self.qemu:
            for _, field, _, _ in string.Formatter().parse(arg):
                if field and field not in STRING_FIELDS and field not in names:
                    names.append(field)
        return names

    def qemu_args(self, accel: str, cmdline: str) -> list[str]:
        """The full QEMU command line, for a run directory where each file is staged by name."""
        values = {name: name for name in self.files}
        values.update(cmdline=cmdline, hypervisor_cmdline=self.hypervisor_cmdline)
        fmt = QemuArgs()
        return [
            "-accel", accel, "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-no-reboot",
            "-machine", self.machine, "-cpu", self.cpu, "-m", str(self.memory_mb),
            *(fmt.format(arg, **values) for arg in self.qemu),
        ]

    def covers(self, path: str) -> bool:
        """Whether a change to this source path can break this entry."""
        return any(_path_matches(pattern, path) for pattern in self.paths)


def _path_matches(pattern: str, path: str) -> bool:
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return fnmatch.fnmatchcase(path, pattern)


def load(path: Path = ENTRIES_FILE) -> dict[str, Entry]:
    """All entries declared in `path`, by name, in declaration order."""
    data = tomllib.loads(path.read_text())
    defaults = data.get("defaults", {})
    common = data.get("common", {}).get("paths", [])
    entries = {}
    for name, table in data["entries"].items():
        fields = {**defaults, **table}
        fields["paths"] = tuple(common) + tuple(table.get("paths", ()))
        fields["qemu"] = tuple(fields["qemu"])
        fields["writable"] = tuple(fields.get("writable", ()))
        if fields.get("milestone"):
            re.compile(fields["milestone"])
        entries[name] = Entry(name=name, **fields)
    return entries
