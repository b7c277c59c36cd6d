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
_MAKE_DIRECTORY = re.compile(r"^make(\[\d+\])?: (Entering|Leaving) directory ")
TAIL_LINES = 8   # of a failing step without compiler errors: where its own complaint usually is


class ConfigError(Exception):
    """The fragment's symbols do not survive olddefconfig: a lab problem, not the series'."""


@dataclass
class Build:
    ok: bool
    seconds: float
    out: Path
    log: Path
    errors: list[str] = field(default_factory=list)   # the lines that say why it failed
    limit: str | None = None   # the sandbox limit that stopped it, when one did

    @property
    def bzimage(self) -> Path:
        return self.out / "arch/x86/boot/bzImage"

    @property
    def vmlinux(self) -> Path:
        return self.out / "vmlinux"


Say = Callable[[str], None]
Step = Callable[..., Finished]   # runs one argv confined, from the worktree unless given a cwd


def build(source: Path, out: Path, fragment: Path, jobs: int, sandbox: Sandbox,
          say: Say = lambda message: None) -> Build:
    """Configures (once per fragment) and builds, every step confined: make runs the series' code."""
    started = time.monotonic()
    log = out / "build.log"
    log.write_bytes(b"")
    confined = functools.partial(sandbox.run, log=log, readable=[source, fragment], writable=[out])
    step_start = 0   # where the output of the last step run begins in the log

    def run(argv: list[str], cwd: Path = source) -> Finished:
        nonlocal step_start
        step_start = log.stat().st_size
        return confined(argv, cwd=cwd)

    finished = configure(source, out, fragment, run, say)
    if finished.ok:
        finished = run([*MAKE, f"O={out}", f"-j{jobs}", "bzImage"])
    seconds = round(time.monotonic() - started, 1)
    if finished.ok:
        return Build(True, seconds, out, log)
    with log.open("rb") as f:
        f.seek(step_start)
        errors = explain(f.read().decode("utf-8", "replace"))
    if finished.limit:
        errors.insert(0, f"stopped: the build went over {sandbox.limits.describe(finished.limit)}")
    return Build(False, seconds, out, log, errors, finished.limit)


def configure(source: Path, out: Path, fragment: Path, run: Step, say: Say = lambda message: None) -> Finished:
    """Makes out/.config once per fragment: later builds only follow Kconfig changes."""
    stamp = out / ".bootbot-fragment"
    digest = hashlib.sha256(fragment.read_bytes()).hexdigest()
    if (out / ".config").exists() and stamp.exists() and stamp.read_text() == digest:
        return Finished(0, None)
    say("configuring the kernel: tinyconfig plus the fragment (once per build folder)")
    for step, cwd in [([*MAKE, f"O={out}", "tinyconfig"], source),
                      # merge_config.sh makes its temporary files in the current directory:
                      # the build folder, since the worktree is read-only in the sandbox
                      ([str(source / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(out),
                        str(out / ".config"), str(fragment)], out),
                      ([*MAKE, f"O={out}", "olddefconfig"], source)]:
        finished = run(step, cwd=cwd)
        if not finished.ok:
            return finished
    config = (out / ".config").read_text()
    for line in fragment.read_text().splitlines():
        if line.startswith("CONFIG_") and f"\n{line}\n" not in f"\n{config}\n":
            raise ConfigError(f"{line.split('=')[0]} did not survive olddefconfig "
                              f"(a dependency of it is off): see {fragment}")
    stamp.write_text(digest)
    return finished


def explain(output: str, limit: int = 10) -> list[str]:
    """The lines of a failed step's output that say why: its compiler errors, else make's
    "***" lines and the step's last lines, never make's Entering/Leaving chatter."""
    lines = [line for line in output.splitlines() if line.strip() and not _MAKE_DIRECTORY.match(line)]
    errors = [line for line in lines if _COMPILER_ERROR.match(line)]
    if errors:
        return errors[:limit]
    tail = len(lines) - TAIL_LINES
    return [line for n, line in enumerate(lines) if n >= tail or "***" in line][-limit:]
