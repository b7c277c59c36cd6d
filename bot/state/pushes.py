"""Table push: each new head of a followed branch (a source of kind branch), the commits since
the head checked before being its change."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.state.database import Database, now


class PushState(StrEnum):
    WAITING = "waiting"   # to be assessed
    QUEUED = "queued"
    SKIPPED = "skipped"   # its commits touch no boot path
    CHECKED = "checked"
    FAILED = "failed"     # its assessment raised: set aside


@dataclass(frozen=True)
class PushRecord:
    id: int
    source: str
    base: str    # the head checked before (or the merge base, after a force-push)
    head: str
    state: PushState
    first_seen: float


class PushTable:
    def __init__(self, database: Database):
        self.database = database

    def add(self, source: str, base: str, head: str) -> None:
        """Records a head to check, once, in the caller's transaction (with the source's cursor)."""
        with self.database.transaction():
            self.database.execute("INSERT OR IGNORE INTO push (source, base, head, state, first_seen) "
                                  "VALUES (?, ?, ?, ?, ?)", source, base, head, PushState.WAITING, now())

    def get(self, push_id: int) -> PushRecord:
        return _record(self.database.row("SELECT * FROM push WHERE id = ?", push_id))

    def waiting(self) -> list[PushRecord]:
        return [_record(r) for r in self.database.rows("SELECT * FROM push WHERE state = ? ORDER BY id",
                                                      PushState.WAITING)]

    def set_state(self, push_id: int, state: PushState) -> None:
        with self.database.transaction():
            self.database.execute("UPDATE push SET state = ? WHERE id = ?", state, push_id)

    def counts(self) -> dict[str, int]:
        return self.database.counts("push")


def _record(row) -> PushRecord:
    return PushRecord(**{**dict(row), "state": PushState(row["state"])})
