"""Building the kernel: tinyconfig plus config/kernel.config, in a persistent O= folder."""
from __future__ import annotations

import functools
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from checks.sandbox import Finished, Sandbox

MAKE = ["make", "ARCH=x86_64", "KBUILD_BUILD_USER=bootbot", "KBUILD_BUILD_HOST=bootbot"]
_COMPILER_ERROR = re.compile(r"^\S+:\d+(:\d+)?: (fatal )?error: ")


class ConfigError(Exception):
    """The fragment's symbols do not survive olddefconfig: a lab problem, not the series'."""


@dataclass
class Build:
    ok: bool
    seconds: float
    out: Path
    errors: list[str] = field(default_factory=list)   # the first compiler errors, file:line first
    limit: str | None = None   # the sandbox limit that stopped it, when one did

    @property
    def log(self) -> Path:
        return self.out / "build.log"

    @property
    def bzimage(self) -> Path:
        return self.out / "arch/x86/boot/bzImage"

    @property
    def vmlinux(self) -> Path:
        return self.out / "vmlinux"


def build(source: Path, out: Path, fragment: Path, jobs: int, sandbox: Sandbox) -> Build:
    """Configures (once per fragment) and builds, every step confined: make runs the series' code."""
    started = time.monotonic()
    log = out / "build.log"
    log.write_bytes(b"")
    run = functools.partial(sandbox.run, cwd=source, log=log, readable=[source, fragment], writable=[out])
    finished = configure(out, fragment, run)
    if finished.ok:
        finished = run([*MAKE, f"O={out}", f"-j{jobs}", "bzImage"])
    seconds = round(time.monotonic() - started, 1)
    if finished.ok:
        return Build(True, seconds, out)
    errors = first_errors(log.read_text(errors="replace"))
    if finished.limit:
        errors.insert(0, f"stopped: the build went over {sandbox.limits.describe(finished.limit)}")
    return Build(False, seconds, out, errors, finished.limit)


def configure(out: Path, fragment: Path, run: Callable[[list[str]], Finished]) -> Finished:
    """Makes out/.config once per fragment: later builds only follow Kconfig changes."""
    stamp = out / ".bootbot-fragment"
    digest = hashlib.sha256(fragment.read_bytes()).hexdigest()
    if (out / ".config").exists() and stamp.exists() and stamp.read_text() == digest:
        return Finished(0, None)
    steps = [[*MAKE, f"O={out}", "tinyconfig"],
             ["scripts/kconfig/merge_config.sh", "-m", "-O", str(out), str(out / ".config"), str(fragment)],
             [*MAKE, f"O={out}", "olddefconfig"]]
    for step in steps:
        finished = run(step)
        if not finished.ok:
            return finished
    config = (out / ".config").read_text()
    for line in fragment.read_text().splitlines():
        if line.startswith("CONFIG_") and f"\n{line}\n" not in f"\n{config}\n":
            raise ConfigError(f"{line.split('=')[0]} did not survive olddefconfig "
                              f"(a dependency of it is off): see {fragment}")
    stamp.write_text(digest)
    return finished


def first_errors(log: str, limit: int = 10) -> list[str]:
    errors = [line for line in log.splitlines() if _COMPILER_ERROR.match(line)]
    return (errors or [line for line in log.splitlines() if line.startswith("make")][-3:])[:limit]
