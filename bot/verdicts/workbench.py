"""The real parts of a check (check.Parts): a workspace of the tree to apply and build in, the
boot lab, and the result folder they both write into."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import git

from bot import settings as settings_module
from bot.boots import runner
from bot.boots.entry import Entry
from bot.boots.runner import BootResult
from bot.changes.change import Change
from bot.sandbox import Sandbox
from bot.settings import Settings
from bot.trees import build as build_module
from bot.trees.build import Build
from bot.trees.tree import Tree
from bot.trees.workspace import Workspace
from bot.words import COMMITS


def in_words(phase: str) -> str:
    """A phase (base, series, patches-1-<k>) as the progress lines say it."""
    return {"base": "the base", "series": "the series"}.get(phase, phase.replace("-", " ", 1))


@dataclass
class Workbench:
    tree: Tree
    ws: Workspace
    settings: Settings
    folder: Path
    progress: Callable[[str], None]

    @property
    def identity(self) -> str:
        """What else the base's results depend on: QEMU and the host's files this tree's entries
        boot, known by size and mtime (an upgrade of one boots the base again). Not the
        accelerator: each result records the one it ran with, and a base is booted again, with
        the series' own, before a failure with the series counts."""
        lab = self.settings.lab
        used = self.settings.declarations.host_files(self.tree)
        files = [shutil.which(lab.qemu) or lab.qemu, *(str(lab.host[name]) for name in used if name in lab.host)]
        stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) if os.path.exists(f) else (f,) for f in files]
        return repr(stats)

    def apply(self, base: str, change: Change) -> list[str]:
        self.ws.checkout(base)
        return change.commits if change.kind == COMMITS else self.ws.apply(change.am_mbox)

    def blame(self, commit: str, path: str, line: int) -> tuple[str, str] | None:
        """The commit that last changed line `line` of `path` at `commit`, and the line."""
        try:
            blame = self.ws.repo.git.blame("--porcelain", "-L", f"{line},{line}", commit, "--", path)
        except git.GitCommandError:   # no such file or line there
            return None
        lines = blame.splitlines()
        text = next((l[1:] for l in lines if l.startswith("\t")), None)
        return (lines[0].split()[0], text) if lines and text is not None else None

    def build(self, commit: str, phase: str) -> Build:
        self.progress(f"building {in_words(phase)} ({commit[:12]})")
        self.ws.checkout(commit)
        # A uid per workspace: the process limit counts per uid, so builds at once do not share it.
        sandbox = Sandbox(self.settings.lab.sandbox.uid + 1 + self.ws.slot, self.settings.sandbox_limits)
        built = build_module.build(self.tree, self.ws.worktree, self.ws.build, self.settings.make_jobs, sandbox,
                                   self.progress)
        # the workspace's log is rewritten by its next build: the result folder keeps each one
        kept = self.folder / "builds" / f"{len(list(self.folder.glob('builds/*'))) + 1}-{phase}" / "build.log"
        kept.parent.mkdir(parents=True)
        shutil.copyfile(built.log, kept)
        built.log = kept.relative_to(self.folder)
        return built

    def boot(self, built: Build, entries: list[Entry], phase: str, attempt: int = 1,
             limits: runner.Limits = runner.OWN_LIMITS) -> list[BootResult]:
        again = f" again (attempt {attempt})" if attempt > 1 else ""
        self.progress(f"booting {', '.join(e.name for e in entries)} {'on' if phase == 'base' else 'with'} "
                      f"{in_words(phase)}{again}")
        settings = self.settings
        files = settings_module.files(built.artifacts, settings.declarations, settings.lab, settings.sandbox_limits,
                                      "built")
        return runner.boot(entries, files, settings.lab, self.folder / "boots" / phase, root=self.folder,
                           patterns=settings.declarations.patterns, probe=self.tree.probe,
                           symbols=self.tree.symbols_of(built.artifacts, self.ws.worktree), attempt=attempt,
                           limits=limits,
                           progress=self._said)

    def _said(self, entry: str, result: BootResult | None) -> None:
        """An entry's end, as the progress of the check says it."""
        if result is not None:
            self.progress(result.progress_line())
