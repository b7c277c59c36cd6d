"""bot/state/outbox.py on a database of its own: held, approved, dropped, and sent exactly once."""
from __future__ import annotations

import pytest

from bot.state import State
from bot.state.outbox import Delivery, OutboxChanged, ReplyState


class Refused(Exception):
    pass


@pytest.fixture
def state(tmp_path) -> State:
    made = State(tmp_path / "bootbot.sqlite3")
    for job in (1, 2):
        made.jobs.queue(series_id=job)
    return made


def test_a_held_reply_goes_out_only_once_approved(state):
    state.outbox.add(1, "<r1@bot>", b"raw 1", held=True)
    [held] = state.outbox.to_review()
    assert held.state == ReplyState.HELD and state.outbox.due() == [] and state.outbox.waiting() == 1
    state.outbox.change(held, ReplyState.PENDING)
    [due] = state.outbox.due()
    with pytest.raises(OutboxChanged):
        state.outbox.change(held, ReplyState.DROPPED)   # as it was read: held, which it is no longer
    assert due.id == held.id and state.outbox.oldest_pending() is not None


def test_a_reply_is_sent_once_and_marked_in_the_transaction_that_sends_it(state):
    state.outbox.add(1, "<r1@bot>", b"raw 1", held=False)
    [reply] = state.outbox.due()
    sent = []
    assert state.outbox.deliver(reply, Delivery.REPLY, 30, lambda: sent.append(reply.id), Refused)
    assert sent == [reply.id] and state.outbox.get(reply.id).state == ReplyState.SENT
    assert not state.outbox.deliver(reply, Delivery.REPLY, 30, lambda: sent.append(reply.id), Refused)
    assert sent == [reply.id] and state.outbox.sent_in_a_day() == 1 and state.outbox.waiting() == 0


def test_a_reply_dropped_after_it_was_read_is_not_sent(state):
    state.outbox.add(1, "<r1@bot>", b"raw 1", held=False)
    [reply] = state.outbox.due()
    state.outbox.change(reply, ReplyState.DROPPED)   # the operator, meanwhile
    assert not state.outbox.deliver(reply, Delivery.REPLY, 30, lambda: pytest.fail("sent"), Refused)
    assert state.outbox.get(reply.id).state == ReplyState.DROPPED


def test_a_failed_send_is_recorded_waits_and_keeps_the_reply(state):
    state.outbox.add(2, "<r2@bot>", b"raw 2", held=False)
    [reply] = state.outbox.due()

    def refuse():
        raise Refused("smtp: connection refused")

    with pytest.raises(Refused):
        state.outbox.deliver(reply, Delivery.REPLY, 3600, refuse, Refused)
    after = state.outbox.get(reply.id)
    assert (after.state, after.attempts, after.last_error) == (ReplyState.PENDING, 1, "smtp: connection refused")
    assert state.outbox.due() == []   # its next try is an hour away


def test_a_review_copy_marks_the_reply_reviewed_and_leaves_it_held(state):
    state.outbox.add(1, "<r1@bot>", b"raw 1", held=True)
    [held] = state.outbox.to_review()
    assert state.outbox.deliver(held, Delivery.REVIEW, 30, lambda: None, Refused)
    assert state.outbox.to_review() == [] and state.outbox.get(held.id).state == ReplyState.HELD
