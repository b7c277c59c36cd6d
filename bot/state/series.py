"""Tables series and patch: each revision of a mailed series (a thread of [PATCH vN M/N] mails)
and the patches of it that arrived."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.state.database import Database, now


class SeriesState(StrEnum):
    WAITING = "waiting"         # for the rest of its patches
    QUEUED = "queued"           # complete, a job made
    SKIPPED = "skipped"         # it touches no boot path
    PARTIAL = "partial"         # still incomplete after the grace time, or unreadable
    SUPERSEDED = "superseded"   # a newer revision came before it was checked
    CHECKED = "checked"
    FAILED = "failed"           # its assessment raised: set aside


@dataclass(frozen=True)
class SeriesRecord:
    id: int
    head: str          # the cover letter's Message-ID, else the first patch's
    thread: str
    subject: str       # without tags, to match later revisions
    author: str
    version: int
    expected: int      # patches, as its subjects count them
    state: SeriesState
    first_seen: float


class SeriesTable:
    def __init__(self, database: Database):
        self.database = database

    def file_patch(self, msgid: str, thread: str, subject: str, author: str, version: int, expected: int,
                   counter: int) -> None:
        """Files a mail of a series (patch `counter`; 0: the cover letter) into its revision's record,
        which it makes when it is the first to come; the cover, or the thread's first patch, heads it."""
        with self.database.transaction():
            self.database.execute(
                "INSERT OR IGNORE INTO series (head, thread, subject, author, version, expected, state, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", msgid, thread, subject, author, version, expected,
                SeriesState.WAITING, now())
            series = self.database.row("SELECT id FROM series WHERE thread = ? AND version = ? ORDER BY id",
                                       thread, version)
            if counter == 0 or msgid == thread:
                self.database.execute("UPDATE series SET head = ?, subject = ? WHERE id = ?", msgid, subject,
                                      series["id"])
            if counter > 0:
                self.database.execute("INSERT OR IGNORE INTO patch (series_id, counter, msgid) VALUES (?, ?, ?)",
                                      series["id"], counter, msgid)

    def get(self, series_id: int) -> SeriesRecord:
        return _record(self.database.row("SELECT * FROM series WHERE id = ?", series_id))

    def newest_in_thread(self, thread: str) -> SeriesRecord | None:
        row = self.database.one("SELECT * FROM series WHERE thread = ? ORDER BY version DESC", thread)
        return _record(row) if row else None

    def newest_revision(self, series: SeriesRecord) -> SeriesRecord:
        """The newest revision of `series` that is complete (matched by subject and author)."""
        row = self.database.one("SELECT * FROM series WHERE subject = ? AND author = ? AND state != ? "
                                "ORDER BY version DESC, id DESC", series.subject, series.author, SeriesState.WAITING)
        return _record(row) if row else series

    def waiting(self) -> list[SeriesRecord]:
        return [_record(r) for r in self.database.rows("SELECT * FROM series WHERE state = ?", SeriesState.WAITING)]

    def waiting_threads(self, source: str) -> list[str]:
        """The threads of series still waiting for patches whose head `source` brought."""
        return [r["thread"] for r in self.database.rows(
            "SELECT DISTINCT s.thread FROM series s JOIN message m ON m.msgid = s.head "
            "WHERE s.state = ? AND m.source = ?", SeriesState.WAITING, source)]

    def patches(self, series_id: int) -> int:
        return self.database.value("SELECT COUNT(*) FROM patch WHERE series_id = ?", series_id)

    def set_state(self, series_id: int, state: SeriesState) -> None:
        with self.database.transaction():
            self.database.execute("UPDATE series SET state = ? WHERE id = ?", state, series_id)

    def supersede_older(self, series: SeriesRecord) -> list[int]:
        """Marks the older revisions of `series` not checked yet as superseded; all older ones' ids."""
        with self.database.transaction():
            older = [r["id"] for r in self.database.rows(
                "SELECT id FROM series WHERE subject = ? AND author = ? AND version < ? AND id != ?",
                series.subject, series.author, series.version, series.id)]
            for series_id in older:
                self.database.execute("UPDATE series SET state = ? WHERE id = ? AND state IN (?, ?)",
                                      SeriesState.SUPERSEDED, series_id, SeriesState.WAITING, SeriesState.QUEUED)
            return older

    def head_and_source(self, series_id: int) -> tuple[str, str]:
        """The series' head Message-ID, and the name of the source that brought that mail ("": a
        mail stored before sources)."""
        row = self.database.row("SELECT s.head, m.source FROM series s LEFT JOIN message m ON m.msgid = s.head "
                                "WHERE s.id = ?", series_id)
        return row["head"], row["source"] or ""

    def counts(self) -> dict[str, int]:
        return self.database.counts("series")


def _record(row) -> SeriesRecord:
    return SeriesRecord(**{**dict(row), "state": SeriesState(row["state"])})
