"""Workspaces: a git worktree of a tree and its build folder, kept across checks.

Builds stay incremental because a workspace is reused: checking out another commit rewrites
only the files that differ, so make rebuilds only what they feed. Each check holds one
workspace under an exclusive lock; checks running at once take different workspaces."""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from bot.verdicts.words import LabError

# Who commits the applied patches, and who aborts a failed `git am`: a new machine's git knows nobody.
_IDENTITY = {"GIT_COMMITTER_NAME": "bootbot", "GIT_COMMITTER_EMAIL": "bootbot@localhost"}


class ApplyFailed(Exception):
    def __init__(self, index: int | None, message: str):
        super().__init__(message)
        self.index = index   # the patch (1 is the first) that did not apply, when git am said which
        self.message = message


@dataclass
class Workspace:
    source: Path    # the worktree
    build: Path     # the O= build folder
    slot: int       # which of the tree's workspaces: builds at once never share one

    @property
    def repo(self) -> git.Repo:
        repo = git.Repo(self.source)
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
        am = subprocess.run(["git", "am", "-3", "--keep-cr"], cwd=self.source, input=mbox,
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


@dataclass(frozen=True)
class Base:
    commit: str
    how: str   # how it was found, in words for the report


def resolve_base(tree: Path, wanted: str | None, branch: str, blobs: list[tuple[str, str]] = (),
                 days: int = 90) -> Base:
    """The commit to apply on: the series' base-commit when the tree has it; else the newest commit
    of `branch` within `days` whose files hold the blobs the patches were made on (what
    `b4 am --guess-base` does); else the branch's head."""
    try:
        repo = git.Repo(tree)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise LabError(f"{tree} is not a git tree") from None
    if wanted and _commit(repo, wanted):
        return Base(_commit(repo, wanted), "its base-commit")
    head = _commit(repo, branch)
    if head is None:
        raise LabError(f"{tree} has neither base-commit {wanted} nor branch {branch}")
    guessed = _guess(repo, head, blobs, days) if blobs else None
    if guessed:
        return Base(guessed, f"guessed: the newest commit of {branch} holding the {len(blobs)} files as the "
                             f"patches found them{' (its base-commit is not in the tree)' if wanted else ''}")
    return Base(head, f"the head of {branch}: " + ("its base-commit is not in the tree" if wanted else
                                                   "no base-commit, and no recent commit holds its files as found"))


def _commit(repo: git.Repo, name: str) -> str | None:
    try:   # repo.commit() takes any 40 hex digits on trust; rev-parse checks the commit exists
        return repo.git.rev_parse("--verify", "--quiet", f"{name}^{{commit}}")
    except git.GitCommandError:
        return None


def _guess(repo: git.Repo, head: str, blobs: list[tuple[str, str]], days: int) -> str | None:
    """The newest commit whose files hold `blobs`. The files change only in the commits that touch
    them (newest first): the head's state is the one after the newest of those, the state after
    each older one lasts until just before the next newer, the state before the oldest ends there."""
    paths = [path for path, _ in blobs]
    touching = repo.git.rev_list(f"--since={days}.days.ago", head, "--", *paths).split()
    states = [(head, head), *((older, f"{newer}~1") for newer, older in zip(touching, touching[1:]))]
    if touching:
        states.append((f"{touching[-1]}~1", f"{touching[-1]}~1"))
    for tree, newest in states:
        if _commit(repo, tree) and _holds(repo, tree, blobs):
            return _commit(repo, newest)
    return None


def _holds(repo: git.Repo, commit: str, blobs: list[tuple[str, str]]) -> bool:
    listed = {}
    for line in repo.git.ls_tree(commit, "--", *(path for path, _ in blobs)).splitlines():
        meta, path = line.split("\t", 1)
        listed[path] = meta.split()[2]
    return all(listed.get(path, "").startswith(blob) for path, blob in blobs)


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
    workspace = Workspace(source=home / str(slot) / "src", build=home / str(slot) / "build", slot=slot)
    if not (workspace.source / ".git").exists():
        repo = git.Repo(tree)
        repo.git.worktree("prune")
        repo.git.worktree("add", "--detach", str(workspace.source), "HEAD")
    workspace.build.mkdir(parents=True, exist_ok=True)
    return workspace
