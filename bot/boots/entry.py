"""Entries: the ways into what a tree builds, read from checks/entries/<tree>.toml."""
from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# The values each run gives the templates besides an entry's own: the accelerator, the run's
# nonce, and the command line the operator appends (`bootbot boot --append`).
RUN_VALUES = ("accel", "nonce", "append")
_OWN_FIELDS = ("qemu", "paths", "writable", "timeout", "silence", "experimental", "typical_seconds", "success")


class QemuArgs(string.Formatter):
    """Fills templates; "{x:opt}" doubles commas, for QEMU option values."""

    def format_field(self, value, format_spec):
        if format_spec == "opt":
            return str(value).replace(",", ",,")
        return super().format_field(value, format_spec)


def placeholders(templates) -> list[str]:
    """The names the templates refer to, in order of first use."""
    names = []
    for template in templates:
        for _, name, _, _ in string.Formatter().parse(template):
            if name and name not in names:
                names.append(name)
    return names


@dataclass(frozen=True)
class Entry:
    name: str
    tree: str
    description: str
    qemu: tuple[str, ...]          # the common arguments, then the entry's own
    values: Mapping[str, str]      # its other fields, for the templates: cmdline, cpu, memory_mb ...
    timeout: float
    silence: float
    writable: tuple[str, ...]
    experimental: bool
    paths: tuple[str, ...]         # its own: the source paths whose change can break it
    typical_seconds: float
    success: str                   # a regular expression; {nonce} stands for the run's nonce

    @property
    def files(self) -> list[str]:
        """The files this entry boots, by name, in order of use: every placeholder of its QEMU
        arguments that is neither one of its values nor a run's."""
        return [n for n in placeholders(self.qemu) if n not in self.values and n not in RUN_VALUES]

    def strings(self, run: Mapping[str, str]) -> dict[str, str]:
        """Its values with the run's filled in (the nonce into the command line, say)."""
        return {key: " ".join(QemuArgs().format(value, **run).split()) for key, value in self.values.items()}

    def qemu_args(self, run: Mapping[str, str]) -> list[str]:
        """The QEMU arguments, for a run folder where each file is staged under its name."""
        values = {**self.strings(run), **{name: name for name in self.files}, **run}
        return [QemuArgs().format(arg, **values) for arg in self.qemu]

    def success_pattern(self, nonce: str) -> re.Pattern:
        return re.compile(self.success.replace("{nonce}", re.escape(nonce)))

    def covers(self, path: str) -> bool:
        """Whether this source path is one of the entry's own."""
        return any(path_matches(pattern, path) for pattern in self.paths)


def path_matches(pattern: str, path: str) -> bool:
    """A trailing / means everything below; * and ? glob."""
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return fnmatch.fnmatchcase(path, pattern)


def parse(data: dict, tree: str) -> dict[str, Entry]:
    defaults, common = data.get("defaults", {}), data.get("common", {})
    entries = {}
    for name, table in data["entries"].items():
        fields = {**defaults, **table}
        values = {key: str(value) for key, value in fields.items() if key not in _OWN_FIELDS}
        description = values.pop("description", "")
        entries[name] = Entry(
            name=name, tree=tree, description=description,
            qemu=(*common.get("qemu", ()), *fields["qemu"]), values=MappingProxyType(values),
            timeout=fields["timeout"], silence=fields["silence"], writable=tuple(fields.get("writable", ())),
            experimental=fields.get("experimental", False), paths=tuple(fields.get("paths", ())),
            typical_seconds=fields.get("typical_seconds", 5), success=fields["success"])
        re.compile(entries[name].success.replace("{nonce}", "0"))   # a bad expression fails at load
    return entries
