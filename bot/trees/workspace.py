"""Workspaces: a git worktree of a tree and its build folder, kept across checks.

Builds stay incremental because a workspace is reused: checking out another commit rewrites
only the files that differ, so make rebuilds only what they feed. Each check holds one
workspace under an exclusive lock; checks running at once take different workspaces."""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

# Who commits the applied patches, and who aborts a failed `git am`: a new machine's git knows nobody.
_IDENTITY = {"GIT_COMMITTER_NAME": "bootbot", "GIT_COMMITTER_EMAIL": "bootbot@localhost"}


class ApplyFailed(Exception):
    def __init__(self, index: int | None, message: str):
        super().__init__(message)
        self.index = index   # the patch (1 is the first) that did not apply, when git am said which
        self.message = message


@dataclass
class Workspace:
    worktree: Path
    build: Path     # the O= build folder
    slot: int       # which of the tree's workspaces: builds at once never share one

    @property
    def repo(self) -> git.Repo:
        repo = git.Repo(self.worktree)
        repo.git.update_environment(**_IDENTITY)
        return repo

    def checkout(self, commit: str) -> None:
        if (Path(self.repo.git_dir) / "rebase-apply").exists():
            self.repo.git.am("--abort")
        self.repo.git.checkout("--detach", "--force", commit)
        # A failed three-way `git am` can leave files the patch named; the next build must not see them.
        self.repo.git.clean("-ffdxq")

    def apply(self, mbox: bytes) -> list[str]:
        """Applies an am-ready mbox on the checked-out commit; returns the new commits."""
        before = self.repo.head.commit.hexsha
        am = subprocess.run(["git", "am", "-3", "--keep-cr"], cwd=self.worktree, input=mbox,
                            capture_output=True, env={**os.environ, **_IDENTITY})
        if am.returncode != 0:
            output = (am.stdout + am.stderr).decode("utf-8", "replace")
            self.repo.git.am("--abort")
            failed = re.search(r"Patch failed at (\d+)", output)
            raise ApplyFailed(failed and int(failed.group(1)), _am_reason(output))
        return self.repo.git.rev_list("--reverse", f"{before}..HEAD").split()


def _am_reason(output: str) -> str:
    """git am's own words, without its advice on how to continue by hand."""
    keep = [line for line in output.splitlines()
            if line.strip() and not line.startswith(("hint:", "When you have resolved",
                                                     "If you prefer", "To restore", "Use 'git am"))]
    return "\n".join(keep[:12])


@contextmanager
def acquire(tree: Path, root: Path, slots: int):
    """Holds a free workspace of `tree` for the duration of a check, making it the first time."""
    home = root / hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:12]
    home.mkdir(parents=True, exist_ok=True)
    lock, slot = _lock_free_slot(home, slots)
    try:
        yield _prepare(tree, home, slot)
    finally:
        lock.close()


def _lock_free_slot(home: Path, slots: int):
    for slot in range(slots):
        lock = (home / f"{slot}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock, slot
        except BlockingIOError:
            lock.close()
    lock = (home / "0.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)   # every workspace busy: queue for the first
    return lock, 0


def _prepare(tree: Path, home: Path, slot: int) -> Workspace:
    workspace = Workspace(worktree=home / str(slot) / "src", build=home / str(slot) / "build", slot=slot)
    if not _registered(workspace.worktree):
        shutil.rmtree(workspace.worktree, ignore_errors=True)   # the worktree of a tree cloned again at that path
        repo = git.Repo(tree)
        repo.git.worktree("prune")
        repo.git.worktree("add", "--detach", str(workspace.worktree), "HEAD")
    workspace.build.mkdir(parents=True, exist_ok=True)
    return workspace


def _registered(source: Path) -> bool:
    """Whether `source` is a worktree its tree still knows: the tree may have been cloned again."""
    try:
        return Path((source / ".git").read_text().removeprefix("gitdir: ").strip()).is_dir()
    except OSError:
        return False
