"""A source of kind "branch": a git remote's branch (tip's x86/boot, linux-next, xen.git's
staging). An idle poll is one `git ls-remote`. A new head is fetched into the configured tree of
its kind and recorded as a push: the commits since the head checked before (after a force-push,
since the merge base), checked as one change with the culprit search over them."""
from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from bot.changes.change import Change, Patch
from bot.sources import Source, Unreachable
from bot.store import now

log = logging.getLogger("bootbot.branch")
_LINK = re.compile(r"^Link:\s*(\S+)\s*$", re.M | re.I)
_FIELDS = "%H%x00%an <%ae>%x00%cn <%ce>%x00%s%x00%B%x02"


@dataclass
class Branch(Source):
    url: str = ""
    branch: str = ""
    tree: str = ""             # the tree kind; its configured git tree holds the fetched commits
    tree_path: Path = Path()
    timeout: float = 120

    @property
    def ref(self) -> str:
        return f"refs/bootbot/{self.name}"

    @property
    def where(self) -> str:
        return f"{self.url} {self.branch}"

    def poll(self) -> str:
        head = self._remote_head()
        last = self.cursor("head")
        last = last["value"] if last else None
        if head == last:
            return ""
        self._git("fetch", "--quiet", "--no-tags", self.url, f"+refs/heads/{self.branch}:{self.ref}")
        base = None if last is None else last if self._is_ancestor(last, head) else self._merge_base(last, head)
        with self.store.transaction() as db:
            if base:
                db.execute("INSERT OR IGNORE INTO push (source, base, head, state, first_seen) "
                           "VALUES (?, ?, ?, 'waiting', ?)", (self.name, base, head, now()))
            self.move(db, "head", head)
        if last is None:   # the first sight: later heads are checked from here
            return f"{self.branch} at {head[:12]}"
        if base is None:
            log.warning("%s: %s has no history in common with %s; nothing to check", self.name, head, last)
        return f"{self.branch} at {head[:12]}" + (f", {base[:12]}..{head[:12]}" if base else "")

    def change(self, base: str, head: str) -> Change:
        """The commits base..head (first parents: a merge is one step), as a change to check."""
        listed = self._git("log", "--reverse", "--first-parent", "-m", "--name-only", f"--format=%x01{_FIELDS}",
                           f"{base}..{head}")
        patches = []
        for index, record in enumerate(filter(None, listed.split("\x01")), 1):
            commit, author, committer, subject, rest = record.split("\x00", 4)
            body, _, names = rest.partition("\x02")
            link = next(iter(_LINK.findall(body)), "")
            patches.append(Patch(index, subject, _msgid_of(link), author, tuple(sorted(set(names.split()))),
                                 commit=commit, committer=committer, link=link))
        return Change(f"{self.branch} ({self.name}): {len(patches)} new commits, {base[:12]}..{head[:12]}", 1,
                      tuple(patches), base, branch=self.where)

    def _remote_head(self) -> str:
        listed = self._git("ls-remote", self.url, f"refs/heads/{self.branch}").split()
        if not listed:
            raise Unreachable(f"{self.where}: no such branch")
        return listed[0]

    def _is_ancestor(self, old: str, new: str) -> bool:
        return subprocess.run(["git", "-C", str(self.tree_path), "merge-base", "--is-ancestor", old, new],
                              capture_output=True).returncode == 0

    def _merge_base(self, old: str, new: str) -> str | None:
        found = subprocess.run(["git", "-C", str(self.tree_path), "merge-base", old, new], capture_output=True, text=True)
        return found.stdout.strip() or None

    def _git(self, *args: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(self.tree_path), *args], capture_output=True, text=True,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise Unreachable(f"{self.where}: git {args[0]} took over {self.timeout:.0f} s") from None
        if done.returncode != 0:
            raise Unreachable(f"{self.where}: git {args[0]}: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
        return done.stdout


def _msgid_of(link: str) -> str:
    """The Message-ID a lore link names (https://lore.kernel.org/r/<id>), or ""."""
    last = unquote(link.rstrip("/").rsplit("/", 1)[-1]) if link else ""
    return last if "@" in last else ""
