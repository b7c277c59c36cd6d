"""bot/daemon/delivery.py on a database of its own, mail written as files: muted, moderated, and
within the day's limit."""
from __future__ import annotations

import logging
from email.parser import BytesParser
from pathlib import Path

import pytest

from bot.daemon import delivery
from bot.daemon.delivery import Mailing
from bot.mail import reply as mail
from bot.state import State
from bot.state.outbox import ReplyState


def mailing(tmp_path: Path, **changed) -> Mailing:
    return Mailing(**{"sender": "bootbot <bootbot@example.org>", "smtp": None, "files": tmp_path / "outbox",
                      "retry_seconds": [30], "moderate": False, "mute": False, "max_per_day": 0, **changed})


@pytest.fixture
def state(tmp_path) -> State:
    made = State(tmp_path / "bootbot.sqlite3")
    for job in (1, 2, 3):
        made.jobs.queue(series_id=job)
        message = mail.new(f"bootbot: PASS {job}", "body\n", "bootbot <bootbot@example.org>", ["ann@example.org"], [],
                           f"<reply-{job}@example.org>")
        made.outbox.add(job, message["Message-ID"], bytes(message), held=False)
    return made


def sent(tmp_path: Path) -> list[str]:
    return sorted(str(BytesParser().parsebytes(f.read_bytes())["Subject"]) for f in (tmp_path / "outbox").glob("*.eml"))


def test_due_replies_go_out_once(state, tmp_path):
    delivery.deliver(state, mailing(tmp_path))
    delivery.deliver(state, mailing(tmp_path))
    assert sent(tmp_path) == ["bootbot: PASS 1", "bootbot: PASS 2", "bootbot: PASS 3"]
    assert {r.state for r in state.outbox.every()} == {ReplyState.SENT}


def test_muted_nothing_goes_out_and_nothing_is_lost(state, tmp_path):
    delivery.deliver(state, mailing(tmp_path, mute=True))
    assert not (tmp_path / "outbox").exists() and state.outbox.waiting() == 3


def test_over_the_days_limit_replies_wait_and_the_log_says_so_once(state, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    delivery.deliver(state, mailing(tmp_path, max_per_day=2))
    delivery.deliver(state, mailing(tmp_path, max_per_day=2))
    assert sent(tmp_path) == ["bootbot: PASS 1", "bootbot: PASS 2"] and state.outbox.waiting() == 1
    assert [r.getMessage() for r in caplog.records] == \
        ["mail.max_per_day (2) reached: the other replies wait in the outbox"]


def test_a_moderator_gets_each_held_reply_once_for_review(tmp_path):
    state = State(tmp_path / "bootbot.sqlite3")
    state.jobs.queue(series_id=1)
    message = mail.new("bootbot: REGRESSION", "body\n", "bootbot <bootbot@example.org>", ["ann@example.org"], [],
                       "<reply-1@example.org>")
    state.outbox.add(1, message["Message-ID"], bytes(message), held=True)
    for _ in range(2):
        delivery.deliver(state, mailing(tmp_path, moderate="mod@example.org"))
    [copy] = (tmp_path / "outbox").glob("*.eml")
    review = BytesParser().parsebytes(copy.read_bytes())
    assert review["To"] == "mod@example.org" and "REGRESSION" in str(review["Subject"])
    assert state.outbox.get(1).state == ReplyState.HELD
