"""A source of kind "branch": a git remote's branch (tip's x86/boot, linux-next, xen.git's
staging). An idle poll is one `git ls-remote`. A new head is fetched into the configured tree of
its kind and recorded as a push: the commits since the head checked before (after a force-push,
since the merge base), checked as one change with the culprit search over them."""
from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from email.utils import formataddr
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

from bot.changes.change import Change, Patch
from bot.sources import Source, Unreachable

log = logging.getLogger("bootbot.branch")
_LINK = re.compile(r"^Link:\s*(\S+)\s*$", re.M | re.I)
_FIELDS = "%H%x00%aN%x03%aE%x00%cN%x03%cE%x00%s%x00%B%x02"   # names and addresses as .mailmap has them


@dataclass
class Branch(Source):
    kind: ClassVar[str] = "branch"
    branch: str = ""
    tree_kind: str = ""        # the kind of tree its commits are (a worker fetches them into its own)
    tree_path: Path = Path()   # the configured tree of that kind: the fetched commits go there
    timeout: float = 120

    @property
    def ref(self) -> str:
        return f"refs/bootbot/{self.name}/fetched"

    @property
    def where(self) -> str:
        return f"{self.url} {self.branch}"

    def poll(self) -> str:
        cursor = self.cursor("head")
        last = cursor.value if cursor else None
        if self._remote_head() == last:
            return ""
        self._git("fetch", "--quiet", "--no-tags", self.url, f"+refs/heads/{self.branch}:{self.ref}")
        head = self._git("rev-parse", self.ref).strip()   # the head fetched: the branch may have moved again
        base = None if last is None else last if self._answer("merge-base", "--is-ancestor", last, head) \
            else self._merge_base(last, head)
        if base:   # its commits stay in the tree, whatever the branch does next, until checked
            self._git("update-ref", f"refs/bootbot/{self.name}/{head}", head)
        with self.state.transaction():
            if base:
                self.state.pushes.add(self.name, base, head)
            self.move("head", head)
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
            link, msgid = _posting(body)
            patches.append(Patch(index, subject, msgid, _address(author), tuple(sorted(set(names.split()))),
                                 commit=commit, committer=_address(committer), link=link))
        return Change(f"{self.branch} ({self.name}): {len(patches)} new commits, {base[:12]}..{head[:12]}", 1,
                      tuple(patches), base, branch=self.where)

    def _remote_head(self) -> str:
        listed = self._git("ls-remote", self.url, f"refs/heads/{self.branch}").split()
        if not listed:
            raise Unreachable(f"{self.where}: no such branch")
        return listed[0]

    def _merge_base(self, one: str, other: str) -> str | None:
        """Their best common ancestor; None when they share no history."""
        answer = self._answer("merge-base", one, other)
        return answer if isinstance(answer, str) else None

    def _answer(self, *args: str) -> str | bool | None:
        """What a git command that answers with its exit status says: its output, True when it
        printed nothing, None for no (status 1); Unreachable when git failed (no such commit
        after the tree was cloned again, say): the cursor stays, nothing is skipped."""
        done = self._run(*args)
        if done.returncode == 1 and not done.stderr.strip():
            return None
        if done.returncode != 0:
            raise Unreachable(self._failure(args, done))
        return done.stdout.strip() or True

    def _git(self, *args: str) -> str:
        done = self._run(*args)
        if done.returncode != 0:
            raise Unreachable(self._failure(args, done))
        return done.stdout

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(["git", "-C", str(self.tree_path), *args], capture_output=True, text=True,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise Unreachable(f"{self.where}: git {args[0]} took over {self.timeout:.0f} s") from None

    def _failure(self, args: tuple[str, ...], done: subprocess.CompletedProcess) -> str:
        said = done.stderr.strip().splitlines()
        return f"{self.where}: git {args[0]}: {said[-1] if said else f'exit status {done.returncode}'}"


def _posting(message: str) -> tuple[str, str]:
    """The link to a commit's posting and its Message-ID: the last Link: naming one (tip puts
    the posting's last, after bug or discussion links), else ("", "")."""
    for link in reversed(_LINK.findall(message)):
        msgid = next((unquote(part) for part in reversed(link.split("#")[0].split("/")) if "@" in part), "")
        if msgid:
            return link, msgid
    return "", ""


def _address(name_and_mail: str) -> str:
    """"Name\x03mail", as git's format above prints them, as "Name <mail>"."""
    name, _, mail = name_and_mail.partition("\x03")
    return formataddr((name, mail))
