"""A source of kind "inbox": a public-inbox v2 archive (lore's xen-devel), read whole. Its
manifest lists the epochs, each a git repository with one commit per message (the blob `m`).

An idle poll is one small request: the manifest. Only an epoch whose fingerprint changed is
fetched, into a local mirror, and read from the stored cursor on. Messages and the cursor move in
one transaction, so a crash neither skips nor repeats a message."""
from __future__ import annotations

import gzip
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import git
import requests

from bot.sources import Source, Unreachable

log = logging.getLogger("bootbot.inbox")
_EPOCH = re.compile(r"/git/(\d+)\.git$")
BATCH = 200   # messages per transaction: a crash repeats at most the work of one batch, never its effect


@dataclass
class Inbox(Source):
    kind: ClassVar[str] = "inbox"
    mirrors: Path = Path()
    list_address: str = ""        # the list's address: Cc of every reply to its series
    max_message_bytes: int | None = None
    timeout: float = 30
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self):
        self.url = self.url.rstrip("/")
        self.cc = [self.list_address, *self.cc] if self.list_address else self.cc

    def poll(self) -> str:
        stored = 0
        for epoch, fingerprint in sorted(self._manifest().items()):
            cursor = self.cursor(f"epoch {epoch}")
            if cursor and cursor.fingerprint == fingerprint:
                continue
            stored += self._read_epoch(epoch, cursor.value if cursor else None)
            self.state.sources.fingerprint(self.name, f"epoch {epoch}", fingerprint)
        return f"{stored} messages" if stored else ""

    def _manifest(self) -> dict[int, str]:
        try:
            answer = self.http.get(f"{self.url}/manifest.js.gz", timeout=self.timeout)
            answer.raise_for_status()
            manifest = json.loads(gzip.decompress(answer.content))
        except (requests.RequestException, OSError, ValueError) as e:
            raise Unreachable(f"{self.url}/manifest.js.gz: {e}") from None
        epochs = {}
        for path, facts in manifest.items():
            match = _EPOCH.search(path)
            if match:
                epochs[int(match.group(1))] = facts.get("fingerprint") or ""
        return epochs

    def _read_epoch(self, epoch: int, cursor: str | None) -> int:
        mirror = self._mirror(epoch)
        try:
            mirror.git.fetch("--quiet", f"{self.url}/git/{epoch}.git", "+refs/heads/master:refs/heads/master")
        except git.GitCommandError as e:
            raise Unreachable(f"fetching epoch {epoch}: {e.stderr.strip()}") from None
        span = f"{cursor}..master" if cursor else "master"
        commits = mirror.git.rev_list("--reverse", span).split()
        for start in range(0, len(commits), BATCH):
            batch = commits[start:start + BATCH]
            with self.state.transaction():
                for commit in batch:
                    raw = self._message_of(mirror, commit)
                    if raw is not None:
                        self.store(raw)
                self.move(f"epoch {epoch}", batch[-1])
        log.info("%s epoch %d: %d new commits", self.name, epoch, len(commits))
        return len(commits)

    def _message_of(self, mirror: git.Repo, commit: str) -> bytes | None:
        try:
            blob = mirror.commit(commit).tree["m"]
        except KeyError:   # a commit removing a message ("d"): nothing to read
            return None
        if self.max_message_bytes is not None and blob.size > self.max_message_bytes:
            # anyone can post: a huge mail is not read into memory, stored or parsed
            log.warning("archive message of %d bytes (commit %s) skipped: over limits.max_message_bytes",
                        blob.size, commit)
            return None
        return blob.data_stream.read()

    def _mirror(self, epoch: int) -> git.Repo:
        path = self.mirrors / f"{epoch}.git"
        if not path.exists():
            return git.Repo.init(path, bare=True)
        return git.Repo(path)

    def adopt(self, legacy_mirrors: Path) -> None:
        """An older bootbot's one archive (table `cursor`, mirrors in state/archive/) becomes this
        source's, so an upgrade reads on from where it was instead of from the start."""
        with self.state.transaction():
            if not self.state.sources.adopt_legacy_cursor(self.name):
                return
            self.state.messages.claim_unsourced(self.name)   # its series' replies Cc its list
        if legacy_mirrors.is_dir() and not self.mirrors.exists():
            self.mirrors.parent.mkdir(parents=True, exist_ok=True)
            legacy_mirrors.rename(self.mirrors)


def thread_link(archive: str, msgid: str) -> str:
    """A message's page in a public-inbox archive ("" when either is unknown)."""
    return f"{archive.rstrip('/')}/{quote(msgid, safe='@+=')}/" if archive and msgid else ""
