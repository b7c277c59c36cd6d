"""The commit a change applies to, found as b4 and syzbot find it: its base-commit (fetching the
tree's upstreams once when the tree lacks it); else the newest commit of a followed branch whose
files hold the blobs its patches were made on; else the branch its subject's tags name (the tree
kind's [[tags]] rules); else the default branch. Only the first two are a known base: a failure
on any other is no patch's fault."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import git

from bot.changes.change import Change
from bot.trees import upstream
from bot.trees.site import Site, commit_of
from bot.trees.tree import TagRule
from bot.words import BY_BASE_COMMIT, BY_BLOBS, BY_BRANCH, BY_TAG, GUESSED

_COMMIT_ID = re.compile(r"[0-9a-f]{7,40}")


@dataclass(frozen=True)
class Base:
    commit: str
    by: str                  # how it was found: BY_BASE_COMMIT, BY_BLOBS, BY_TAG or BY_BRANCH
    how: str                 # the same in words, for the report
    tried: tuple[str, ...] = ()   # when guessed: the branches searched for the patches' blobs

    @property
    def known(self) -> bool:
        return self.by not in GUESSED


def find(site: Site, change: Change, logs: Path, tags: tuple[TagRule, ...] = (), days: int = 90) -> Base:
    """The base of `change` in the tree at `site`; a tree that follows upstreams is fetched first
    when its periodic fetch is due (`logs`: the folder of the trees' fetch logs)."""
    repo = site.repo()
    if site.following:
        upstream.keep_current(site.kind, site.path, site.following, logs)
    own = _own(site, repo, change, logs)
    if own:
        return own
    default = site.default()
    branches = _branches(site, repo, default)
    blobs = change.blobs
    for name, head, date in branches if blobs else ():
        guessed = _guess(repo, head, blobs, date - days * 86400)
        if guessed:
            return Base(guessed, BY_BLOBS, f"the newest commit of {name} holding the {len(blobs)} files as the "
                                           "patches found them")
    tried = tuple(name for name, _, _ in branches) if blobs else ()
    why = _not_found(change, tried)
    named = _tagged(change.tags, tags, {name: head for name, head, _ in branches})
    if named:
        tag, name, head = named
        return Base(head, BY_TAG, f"guessed: the head of {name}, as its subject tag [{tag}] says ({why})", tried)
    return Base(default[1], BY_BRANCH, f"guessed: the head of {default[0]} ({why})", tried)


def _own(site: Site, repo: git.Repo, change: Change, logs: Path) -> Base | None:
    """The change's base-commit, when the tree has it, or has it once its upstreams are fetched."""
    if not (change.base_commit and _COMMIT_ID.fullmatch(change.base_commit)):
        return None
    found = commit_of(repo, change.base_commit)
    if found:
        return Base(found, BY_BASE_COMMIT, "its base-commit")
    fetched = upstream.fetch_missing(site.kind, site.path, site.following, logs) if site.following else []
    found = commit_of(repo, change.base_commit) if fetched else None
    return Base(found, BY_BASE_COMMIT, f"its base-commit, fetched from {', '.join(fetched)}") if found else None


def _branches(site: Site, repo: git.Repo, default: tuple[str, str]) -> list[tuple[str, str, int]]:
    """Where a change's files are looked for: every followed branch, the newest head first, then
    the `default` branch (name, head) when it is none of them. Each by name, head and the
    head's date."""
    branches = [(b.name, b.head, b.date) for b in upstream.followed(site.path)]
    name, head = default
    if head not in {h for _, h, _ in branches}:
        branches.append((name, head, int(repo.commit(head).committed_date)))
    return branches


def _not_found(change: Change, tried: tuple[str, ...]) -> str:
    """Why a change's base is a guess, in words."""
    if not change.base_commit:
        own = "no base-commit"
    elif _COMMIT_ID.fullmatch(change.base_commit):
        own = f"its base-commit {change.base_commit[:12]} is not in the tree"
    else:
        own = "its base-commit line names no commit"
    files = (f"no commit of {', '.join(tried)} holds its files as its patches found them" if tried
             else "its patches name no blob to look for")
    return f"{own}; {files}"


def _guess(repo: git.Repo, head: str, blobs: list[tuple[str, str]], since: int) -> str | None:
    """The newest commit up to `head` (its history since `since`) whose files hold `blobs`. The
    files change only in the commits that touch them (newest first): the head's state is the one
    after the newest of those, the state after each older one lasts until just before the next
    newer, the state before the oldest ends there."""
    paths = [path for path, _ in blobs]
    touching = repo.git.rev_list(f"--since={since}", head, "--", *paths).split()
    states = [(head, head), *((older, f"{newer}~1") for newer, older in zip(touching, touching[1:], strict=False))]
    if touching:
        states.append((f"{touching[-1]}~1", f"{touching[-1]}~1"))
    for tree, newest in states:
        if commit_of(repo, tree) and _holds(repo, tree, blobs):
            return commit_of(repo, newest)
    return None


def _holds(repo: git.Repo, commit: str, blobs: list[tuple[str, str]]) -> bool:
    listed = {}
    for line in repo.git.ls_tree(commit, "--", *(path for path, _ in blobs)).splitlines():
        meta, path = line.split("\t", 1)
        listed[path] = meta.split()[2]
    return all(listed.get(path, "").startswith(blob) for path, blob in blobs)


def _tagged(tags: tuple[str, ...], rules: tuple[TagRule, ...], heads: dict[str, str]) -> tuple[str, str, str] | None:
    """The subject tag a rule takes, the followed branch it names (the first of the rule's that
    the tree has: UPSTREAM/BRANCH, or BRANCH of any upstream), and its head."""
    for tag in tags:
        for rule in rules:
            matched = rule.pattern.fullmatch(tag)
            if not matched:
                continue
            for wanted in (matched.expand(branch) for branch in rule.branches):
                name = next((n for n in heads if wanted in (n, n.split("/", 1)[-1])), None)
                if name:
                    return tag, name, heads[name]
    return None
