"""Tables source_cursor and source_poll: how far each source ([[sources]]) has read, and how its
polls went."""
from __future__ import annotations

from dataclasses import dataclass

from bot.state.database import Database


@dataclass(frozen=True)
class Cursor:
    value: str                 # how far it has read: a commit, a time
    fingerprint: str | None    # an inbox epoch's manifest fingerprint when it was fetched


@dataclass(frozen=True)
class Poll:
    source: str
    polled: float | None       # the last poll, and the last that succeeded
    succeeded: float | None
    new_at: float | None       # when it last brought something new, and what
    new_item: str | None
    error: str | None          # why the last poll failed; None once one succeeds
    polls: int
    failures: int


class SourceTable:
    def __init__(self, database: Database):
        self.database = database

    def cursor(self, source: str, key: str) -> Cursor | None:
        row = self.database.one("SELECT value, fingerprint FROM source_cursor WHERE source = ? AND key = ?",
                                source, key)
        return Cursor(**row) if row else None

    def move(self, source: str, key: str, value: str, fingerprint: str | None = None) -> None:
        """Moves a cursor; in the caller's transaction, with what it read, or not at all."""
        with self.database.transaction():
            self.database.execute("INSERT INTO source_cursor (source, key, value, fingerprint) VALUES (?, ?, ?, ?) "
                                  "ON CONFLICT (source, key) DO UPDATE SET value = excluded.value, "
                                  "fingerprint = COALESCE(excluded.fingerprint, fingerprint)", source, key, value,
                                  fingerprint)

    def fingerprint(self, source: str, key: str, fingerprint: str) -> None:
        with self.database.transaction():
            self.database.execute("UPDATE source_cursor SET fingerprint = ? WHERE source = ? AND key = ?",
                                  fingerprint, source, key)

    def cursors(self, source: str) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.database.rows(
            "SELECT key, value FROM source_cursor WHERE source = ? ORDER BY key", source)}

    def polled(self, source: str, started: float, error: str | None, new: str) -> None:
        """A poll's end: when it began, its error (None: it went well), what it brought ("": nothing)."""
        with self.database.transaction():
            self.database.execute("INSERT INTO source_poll (source) VALUES (?) ON CONFLICT (source) DO NOTHING", source)
            self.database.execute("UPDATE source_poll SET polled = ?, error = ?, succeeded = CASE WHEN ? IS NULL "
                                  "THEN ? ELSE succeeded END, polls = polls + 1, failures = failures + "
                                  "(? IS NOT NULL) WHERE source = ?", started, error, error, started, error, source)
            if new:
                self.database.execute("UPDATE source_poll SET new_at = ?, new_item = ? WHERE source = ?",
                                      started, new, source)

    def polls(self) -> dict[str, Poll]:
        return {r["source"]: Poll(**r) for r in self.database.rows("SELECT * FROM source_poll")}

    def adopt_legacy_cursor(self, source: str) -> bool:
        """An older bootbot's one archive (table `cursor`) becomes `source`'s: its epochs' cursors,
        then the table is gone. Whether there was one."""
        if not self.database.one("SELECT name FROM sqlite_master WHERE name = 'cursor'"):
            return False
        with self.database.transaction():
            for row in self.database.rows("SELECT epoch, commit_id, fingerprint FROM cursor"):
                self.move(source, f"epoch {row['epoch']}", row["commit_id"], row["fingerprint"])
            self.database.execute("DROP TABLE cursor")
        return True
