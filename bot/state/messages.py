"""Table message: mail from every source, stored once by Message-ID whichever source brings it,
each filed once (as a patch, a command, or nothing)."""
from __future__ import annotations

from dataclasses import dataclass

from bot.state.database import Database, now


@dataclass(frozen=True)
class StoredMessage:
    msgid: str
    raw: bytes
    thread: str            # the thread's root Message-ID (References[0], else itself)
    parent: str | None     # In-Reply-To
    source: str | None     # the source that brought it first: its series' replies follow that one's policy


class MessageTable:
    def __init__(self, database: Database):
        self.database = database

    def add(self, msgid: str, raw: bytes, thread: str, parent: str | None, source: str) -> bool:
        """Stores a mail unless one of its Message-ID is stored; whether it was new."""
        with self.database.transaction():
            return bool(self.database.execute(
                "INSERT OR IGNORE INTO message (msgid, raw, thread, parent, received, source) "
                "VALUES (?, ?, ?, ?, ?, ?)", msgid, raw, thread, parent, now(), source).rowcount)

    def has(self, msgid: str) -> bool:
        return self.database.one("SELECT 1 FROM message WHERE msgid = ?", msgid) is not None

    def get(self, msgid: str) -> StoredMessage | None:
        row = self.database.one("SELECT msgid, raw, thread, parent, source FROM message WHERE msgid = ?", msgid)
        return StoredMessage(**row) if row else None

    def unfiled(self) -> list[str]:
        """The Message-IDs not filed yet, in the order they came."""
        return [r["msgid"] for r in self.database.rows("SELECT msgid FROM message WHERE handled = 0 ORDER BY rowid")]

    def filed(self, msgid: str) -> None:
        with self.database.transaction():
            self.database.execute("UPDATE message SET handled = 1 WHERE msgid = ?", msgid)

    def of_thread(self, thread: str) -> list[bytes]:
        """A thread's mails, in the order they came."""
        return [r["raw"] for r in self.database.rows("SELECT raw FROM message WHERE thread = ? ORDER BY rowid", thread)]

    def count(self) -> int:
        return self.database.value("SELECT COUNT(*) FROM message")

    def claim_unsourced(self, source: str) -> None:
        """Mail stored before sources were: the one inbox of then brought it."""
        with self.database.transaction():
            self.database.execute("UPDATE message SET source = ? WHERE source IS NULL", source)
