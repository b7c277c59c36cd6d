"""Following a public-inbox v2 archive (lore): its manifest lists the epochs, each a git
repository with one commit per message (the message is the blob `m`).

An idle poll is one small request: the manifest. Only an epoch whose fingerprint changed is
fetched, into a local mirror, and read from the stored cursor on. Messages and the cursor move in
one transaction, so a crash neither skips nor repeats a message."""
from __future__ import annotations

import gzip
import json
import logging
import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

import git
import requests

from bot.store import Store, now

log = logging.getLogger("bootbot.archive")
_EPOCH = re.compile(r"/git/(\d+)\.git$")
_MSGID = re.compile(r"<([^<>\s]+)>")
BATCH = 200   # messages per transaction: a crash repeats at most the work of one batch, never its effect


class ArchiveUnreachable(Exception):
    pass


class Archive:
    def __init__(self, url: str, mirrors: Path, store: Store, timeout: float = 30,
                 max_message_bytes: int | None = None):
        self.url = url.rstrip("/")
        self.mirrors = mirrors
        self.store = store
        self.max_message_bytes = max_message_bytes
        self.timeout = timeout
        self.http = requests.Session()

    def poll(self) -> int:
        """Stores every message new since the last poll; returns how many."""
        stored = 0
        for epoch, fingerprint in sorted(self._manifest().items()):
            cursor = self.store.one("SELECT commit_id, fingerprint FROM cursor WHERE epoch = ?", epoch)
            if cursor and cursor["fingerprint"] == fingerprint:
                continue
            stored += self._read_epoch(epoch, cursor["commit_id"] if cursor else None)
            with self.store.transaction() as db:
                db.execute("UPDATE cursor SET fingerprint = ? WHERE epoch = ?", (fingerprint, epoch))
        return stored

    def _manifest(self) -> dict[int, str]:
        try:
            answer = self.http.get(f"{self.url}/manifest.js.gz", timeout=self.timeout)
            answer.raise_for_status()
            manifest = json.loads(gzip.decompress(answer.content))
        except (requests.RequestException, OSError, ValueError) as e:
            raise ArchiveUnreachable(f"{self.url}/manifest.js.gz: {e}") from None
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
            raise ArchiveUnreachable(f"fetching epoch {epoch}: {e.stderr.strip()}") from None
        span = f"{cursor}..master" if cursor else "master"
        commits = mirror.git.rev_list("--reverse", span).split()
        for start in range(0, len(commits), BATCH):
            batch = commits[start:start + BATCH]
            with self.store.transaction() as db:
                for commit in batch:
                    raw = self._message_of(mirror, commit)
                    if raw is not None:
                        _store(db, raw)
                db.execute("INSERT INTO cursor (epoch, commit_id) VALUES (?, ?) ON CONFLICT (epoch) "
                           "DO UPDATE SET commit_id = excluded.commit_id", (epoch, batch[-1]))
        log.info("epoch %d: %d new commits", epoch, len(commits))
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


def _store(db, raw: bytes) -> None:
    # compat32 reads header values as sent: the default policy parses them, and raises on some
    # ("Message-ID: <@>") or cuts others ("<a,b@c>" reads "<a").
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    msgid = first_msgid(headers.get("Message-ID", ""))
    if not msgid:
        log.warning("archive message without a Message-ID skipped")
        return
    parent = first_msgid(headers.get("In-Reply-To", ""))
    references = _MSGID.findall(str(headers.get("References", "")))
    thread = references[0] if references else parent or msgid
    db.execute("INSERT OR IGNORE INTO message (msgid, raw, thread, parent, received) VALUES (?, ?, ?, ?, ?)",
               (msgid, raw, thread, parent, now()))


def first_msgid(header) -> str | None:
    match = _MSGID.search(str(header or ""))
    return match.group(1) if match else None
