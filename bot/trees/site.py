"""Where a tree kind's git tree is ([trees.KIND] in the configuration), what it follows, and the
branch a series goes to when its base cannot be found."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import git

from bot.trees.upstream import REFS, Following
from bot.words import LabError


@dataclass(frozen=True)
class Site:
    kind: str
    path: Path
    branch: str | None                  # None: the tree's HEAD (a tree given on the command line)
    following: Following | None = None  # None: nothing is fetched into it (the user's own tree)

    def repo(self) -> git.Repo:
        try:
            return git.Repo(self.path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise LabError(f"{self.path} is not a git tree") from None

    def default(self) -> tuple[str, str]:
        """The branch a series whose base is not found applies to, by its name and its head:
        the followed branch called `branch` (of the first upstream that has one), else the
        tree's own branch of that name, else (no branch named) the tree's HEAD."""
        repo = self.repo()
        if self.branch is None:
            return "HEAD", commit_of(repo, "HEAD") or _no(self.path, "HEAD")
        upstreams = self.following.upstreams if self.following else ()
        for name in [f"{u.name}/{self.branch}" for u in upstreams]:
            head = commit_of(repo, f"{REFS}/{name}")
            if head:
                return name, head
        return self.branch, commit_of(repo, self.branch) or _no(self.path, self.branch)


def commit_of(repo: git.Repo, name: str) -> str | None:
    """The commit `name` names in `repo`, or None: rev-parse checks it exists (repo.commit()
    takes any 40 hex digits on trust)."""
    if name.startswith("-"):
        return None
    try:
        return repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}")
    except git.GitCommandError:
        return None


def _no(path: Path, branch: str) -> str:
    raise LabError(f"{path} has no branch {branch}, followed or its own")
