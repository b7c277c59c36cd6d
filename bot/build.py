"""Building the kernel: tinyconfig plus config/kernel.config, in a persistent O= folder."""
from __future__ import annotations

import hashlib
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MAKE = ["make", "ARCH=x86_64", "KBUILD_BUILD_USER=bootbot", "KBUILD_BUILD_HOST=bootbot"]
_COMPILER_ERROR = re.compile(r"^\S+:\d+(:\d+)?: (fatal )?error: ")


class ConfigError(Exception):
    """The configuration cannot be made: a lab problem, not the series'."""


@dataclass
class Build:
    ok: bool
    seconds: float
    out: Path
    errors: list[str] = field(default_factory=list)   # the first compiler errors, file:line first

    @property
    def log(self) -> Path:
        return self.out / "build.log"

    @property
    def bzimage(self) -> Path:
        return self.out / "arch/x86/boot/bzImage"

    @property
    def vmlinux(self) -> Path:
        return self.out / "vmlinux"


def build(source: Path, out: Path, fragment: Path, jobs: int) -> Build:
    started = time.monotonic()
    configure(source, out, fragment)
    log = out / "build.log"
    with log.open("wb") as sink:
        make = subprocess.run([*MAKE, f"O={out}", f"-j{jobs}", "bzImage"], cwd=source,
                              stdout=sink, stderr=subprocess.STDOUT)
    seconds = round(time.monotonic() - started, 1)
    if make.returncode == 0:
        return Build(True, seconds, out)
    return Build(False, seconds, out, first_errors(log.read_text(errors="replace")))


def configure(source: Path, out: Path, fragment: Path) -> None:
    """Makes out/.config once per fragment: later builds only follow Kconfig changes."""
    stamp = out / ".bootbot-fragment"
    digest = hashlib.sha256(fragment.read_bytes()).hexdigest()
    if (out / ".config").exists() and stamp.exists() and stamp.read_text() == digest:
        return
    steps = [[*MAKE, f"O={out}", "tinyconfig"],
             ["scripts/kconfig/merge_config.sh", "-m", "-O", str(out), str(out / ".config"), str(fragment)],
             [*MAKE, f"O={out}", "olddefconfig"]]
    for step in steps:
        run = subprocess.run(step, cwd=source, capture_output=True, text=True)
        if run.returncode != 0:
            raise ConfigError(f"{' '.join(step[:3])} failed: {(run.stdout + run.stderr).strip()[-300:]}")
    config = (out / ".config").read_text()
    for line in fragment.read_text().splitlines():
        if line.startswith("CONFIG_") and f"\n{line}\n" not in f"\n{config}\n":
            raise ConfigError(f"{line.split('=')[0]} did not survive olddefconfig "
                              f"(a dependency of it is off): see {fragment}")
    stamp.write_text(digest)


def first_errors(log: str, limit: int = 10) -> list[str]:
    errors = [line for line in log.splitlines() if _COMPILER_ERROR.match(line)]
    return (errors or [line for line in log.splitlines() if line.startswith("make")][-3:])[:limit]
