"""Table outbox: the bot's replies, exactly one per job, each with a fixed Message-ID. A reply is
held until the operator approves it (mail.moderate), else pending; pending ones are sent when
due, within the day's limit, and a failure waits longer each time; a dropped one never goes."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.state.database import Database, now


class ReplyState(StrEnum):
    HELD = "held"         # until approved
    PENDING = "pending"   # to be sent, at next_try
    SENT = "sent"
    DROPPED = "dropped"


class Delivery(StrEnum):
    """What a delivery of a reply is: the reply itself, or its copy to the moderator."""
    REPLY = "state = 'sent', sent_at = :now"
    REVIEW = "reviewed = 1"


@dataclass(frozen=True)
class Reply:
    id: int
    job_id: int
    message_id: str
    raw: bytes
    state: ReplyState
    attempts: int
    next_try: float
    last_error: str | None
    sent_at: float | None
    reviewed: int          # its copy went to the moderator
    made: float | None


class OutboxChanged(Exception):
    """A reply was not in the state it was read in (the bot sent it, the operator dropped it)."""


class Outbox:
    def __init__(self, database: Database):
        self.database = database

    def add(self, job_id: int, message_id: str, raw: bytes, held: bool) -> None:
        with self.database.transaction():
            self.database.execute("INSERT INTO outbox (job_id, message_id, raw, state, next_try, made) "
                                  "VALUES (?, ?, ?, ?, ?, ?)", job_id, message_id, raw,
                                  ReplyState.HELD if held else ReplyState.PENDING, now(), now())

    def get(self, reply_id: int) -> Reply | None:
        row = self.database.one("SELECT * FROM outbox WHERE id = ?", reply_id)
        return _reply(row) if row else None

    def every(self) -> list[Reply]:
        return [_reply(r) for r in self.database.rows("SELECT * FROM outbox ORDER BY id")]

    def change(self, reply: Reply, to: ReplyState) -> None:
        """The operator's approval (held to pending, at once) or drop; OutboxChanged unless the
        reply is still as it was read."""
        with self.database.transaction():
            if not self.database.execute("UPDATE outbox SET state = ?, next_try = 0 WHERE id = ? AND state = ?",
                                         to, reply.id, reply.state).rowcount:
                raise OutboxChanged(f"reply {reply.id} changed meanwhile")

    def waiting(self) -> int:
        """Replies not sent yet: pending or held."""
        return self.database.value("SELECT COUNT(*) FROM outbox WHERE state IN (?, ?)",
                                   ReplyState.PENDING, ReplyState.HELD)

    def oldest_pending(self) -> float | None:
        """When the oldest pending reply was made (its job's creation for a reply of before that
        was kept)."""
        return self.database.value("SELECT MIN(COALESCE(o.made, j.created)) FROM outbox o "
                                   "JOIN job j ON j.id = o.job_id WHERE o.state = ?", ReplyState.PENDING)

    def to_review(self) -> list[Reply]:
        return [_reply(r) for r in self.database.rows("SELECT * FROM outbox WHERE state = ? AND reviewed = 0 "
                                                      "ORDER BY id", ReplyState.HELD)]

    def due(self) -> list[Reply]:
        return [_reply(r) for r in self.database.rows("SELECT * FROM outbox WHERE state = ? AND next_try <= ? "
                                                      "ORDER BY id", ReplyState.PENDING, now())]

    def sent_in_a_day(self) -> int:
        return self.database.value("SELECT COUNT(*) FROM outbox WHERE sent_at > ?", now() - 86400)

    def deliver(self, reply: Reply, delivery: Delivery, wait: float, send: Callable[[], None],
                failure: type[Exception]) -> bool:
        """Sends a reply once (`send`), marking it (`delivery`) in the transaction that sends it;
        whether it went: not when its state is no longer the one read (the operator approved or
        dropped it meanwhile). A full state/ must stop the cycle before a mail goes out, not after
        (unmarked, it would go out again): the attempt is written first, needing room on the
        disk, and the mark is committed once the mail is out. Only a disk filling up between the
        two writes can still send one twice. A `failure` of `send` is recorded on the reply and
        raised; the next try is `wait` seconds away."""
        same = {"id": reply.id, "state": reply.state, "now": now(), "next": now() + wait}
        with self.database.transaction() as db:
            if not db.execute("UPDATE outbox SET attempts = attempts + 1, next_try = :next WHERE id = :id "
                              "AND state = :state", same).rowcount:
                return False
        try:
            with self.database.transaction() as db:
                marked = db.execute(f"UPDATE outbox SET {delivery.value} WHERE id = :id AND state = :state", same)
                if not marked.rowcount:
                    return False
                send()
        except failure as e:
            with self.database.transaction():
                self.database.execute("UPDATE outbox SET last_error = ? WHERE id = ?", str(e), reply.id)
            raise
        return True


def _reply(row) -> Reply:
    return Reply(**{**dict(row), "state": ReplyState(row["state"])})
