"""Building a tree as its declaration says, out of tree in a kept build folder, every step confined."""
from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.sandbox import Finished, Sandbox
from bot.trees.tree import Step, Tree

_COMPILER_ERROR = re.compile(r"^\S+:\d+(:\d+)?: (fatal )?error: ")
_MAKE_DIRECTORY = re.compile(r"^make(\[\d+\])?: (Entering|Leaving) directory ")
TAIL_LINES = 8   # of a failing step without compiler errors: where its own complaint usually is
STAMP = ".bootbot-configured"   # in the build folder: which configuration it holds

Say = Callable[[str], None]


@dataclass
class Build:
    ok: bool
    seconds: float
    log: Path
    artifacts: dict[str, Path] = field(default_factory=dict)   # by name, when it built
    errors: list[str] = field(default_factory=list)   # the lines that say why it failed
    limit: str | None = None   # the sandbox limit that stopped it, when one did


class _Steps:
    """Runs a tree's steps confined, each appending to one log, remembering where the last began."""

    def __init__(self, tree: Tree, source: Path, out: Path, jobs: int, sandbox: Sandbox):
        self.tree, self.source, self.sandbox = tree, source, sandbox
        self.values = {"source": str(source), "out": str(out), "jobs": str(jobs),
                       "fragment": str(tree.fragment or "")}
        self.readable = [source, *filter(None, [tree.fragment])]
        self.out, self.log = out, out / "build.log"
        self.log.write_bytes(b"")
        self.last_start = 0

    def run(self, step: Step) -> Finished:
        self.last_start = self.log.stat().st_size
        cwd = Path(step.cwd.format(**self.values)) if step.cwd else self.source
        return self.sandbox.run(self.tree.argv(step, self.values), cwd=cwd, log=self.log,
                                readable=self.readable, writable=[self.out])

    def last_output(self) -> str:
        with self.log.open("rb") as f:
            f.seek(self.last_start)
            return f.read().decode("utf-8", "replace")


def build(tree: Tree, source: Path, out: Path, jobs: int, sandbox: Sandbox, say: Say = lambda message: None) -> Build:
    """Configures (once per build folder and configuration) and builds: the series' Makefiles
    and scripts run, so every step is confined and limited."""
    started = time.monotonic()
    steps = _Steps(tree, source, out, jobs, sandbox)
    finished = configure(tree, steps, say)
    for step in tree.build if finished.ok else ():
        finished = steps.run(step)
        if not finished.ok:
            break
    seconds = round(time.monotonic() - started, 1)
    if not finished.ok:
        errors = explain(steps.last_output())
        if finished.limit and sandbox.limits:
            errors.insert(0, f"stopped: the build went over {sandbox.limits.describe(finished.limit)}")
        return Build(False, seconds, steps.log, errors=errors, limit=finished.limit)
    artifacts = {name: out / path for name, path in tree.artifacts.items()}
    missing = [path for path in artifacts.values() if not path.is_file()]
    if missing:   # a build can skip a target and succeed (Xen without a PE linker makes no xen.efi)
        return Build(False, seconds, steps.log, errors=[f"the build made no {p.relative_to(out)}" for p in missing])
    lost = lost_lines(tree, out)
    if lost:   # the commit's Kconfig turned a line of the fragment off (make re-syncs .config itself)
        return Build(False, seconds, steps.log, errors=[f"{lost[0].split('=')[0]} is off in the built configuration "
                                                        f"(a dependency of it is off): see {tree.fragment}"])
    return Build(True, seconds, steps.log, artifacts)


def lost_lines(tree: Tree, out: Path) -> list[str]:
    """The fragment's lines the configuration in `out` does not hold: checked after every build,
    since each commit's Kconfig decides them, not only the one that configured the folder."""
    if not (tree.config and tree.fragment):
        return []
    config = f"\n{(out / tree.config).read_text()}\n"
    return [line for line in tree.fragment_lines() if f"\n{line}\n" not in config]


def configure(tree: Tree, steps: _Steps, say: Say) -> Finished:
    """Runs the configure steps unless the build folder holds this configuration already."""
    fragment = tree.fragment.read_text() if tree.fragment else ""
    stamp, done = steps.out / STAMP, Finished(0, None)
    digest = hashlib.sha256(repr((tree.make, tree.configure, fragment)).encode()).hexdigest()
    if not tree.configure or (stamp.exists() and stamp.read_text() == digest
                              and (not tree.config or (steps.out / tree.config).exists())):
        return done
    say(f"configuring {tree.description} (once per build folder)")
    for step in tree.configure:
        done = steps.run(step)
        if not done.ok:
            return done
    stamp.write_text(digest)
    return done


def explain(output: str, limit: int = 10) -> list[str]:
    """The lines of a failed step's output that say why: its compiler errors, else make's
    "***" lines and the step's last lines, never make's Entering/Leaving chatter."""
    lines = [line for line in output.splitlines() if line.strip() and not _MAKE_DIRECTORY.match(line)]
    errors = [line for line in lines if _COMPILER_ERROR.match(line)]
    if errors:
        return errors[:limit]
    tail = len(lines) - TAIL_LINES
    return [line for n, line in enumerate(lines) if n >= tail or "***" in line][-limit:]
