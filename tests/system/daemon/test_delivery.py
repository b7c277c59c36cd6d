"""The list bot's brake on noise (moderation, mute, a daily limit), end to end against an archive
and an SMTP server: it holds across restarts (tests/boot/verdicts/test_flaky.py: verdicts to
trust with real boots)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from harness import Faulty, cli
from tiny_tree import patches

# The brake on noise, on the tiny tree: a three-patch series is refused (this lab allows two),
# which is a verdict with a reply, and needs no kernel.

@pytest.fixture
def braked(tmp_path):
    """The faults' lab with a brake: the [mail] settings given."""
    made = []

    def make(mail: str) -> Faulty:
        lab = Faulty(tmp_path / "lab")
        text = lab.config.read_text().replace("moderate = false\n", "")
        lab.config.write_text(text.replace("[mail]\n", f"[mail]\n{mail}"))
        made.append(lab)
        return lab
    yield make
    for lab in made:
        lab.close()


def retitled(mails: list[Path], subject: str) -> list[Path]:
    """Another series, not a new revision of the first: its cover letter says another thing."""
    mails[0].write_text(mails[0].read_text().replace("*** SUBJECT HERE ***", subject))
    return mails


def outbox(lab: Faulty, *args: str) -> subprocess.CompletedProcess:
    return cli("outbox", *args, config=lab.config, timeout=60)


def test_a_moderated_reply_waits_for_approval_and_then_goes_out_once(tmp_path, repo, braked):
    lab = braked('moderate = "mod@example.org"\n')
    lab.post(patches(repo, tmp_path / "refused", 1, count=3))
    assert lab.poll().returncode == 0
    [review] = lab.replies(1)
    assert review.recipients == ["mod@example.org"] and "[bootbot review #1]" in review.message["Subject"]
    assert "bootbot outbox approve 1" in review.message.get_content()
    assert lab.poll().returncode == 0   # a restart: the review is not sent again, the reply still held
    assert len(lab.sink.received) == 1
    listed = outbox(lab, "list").stdout
    assert listed.startswith("    1  held") and "ann@example.org" in listed
    assert outbox(lab, "approve", "1").returncode == 0
    assert lab.poll().returncode == 0
    reply = lab.replies(2)[1]
    assert set(reply.recipients) == {"ann@example.org", "xen-devel@lists.example.org"}
    assert "REFUSED" in reply.message.get_content()
    assert lab.poll().returncode == 0 and len(lab.sink.received) == 2
    again = outbox(lab, "approve", "1")
    assert again.returncode == 2 and again.stderr.strip() == "bootbot: reply 1 is sent: it cannot be approved"


def test_a_dropped_reply_never_goes_out_and_a_muted_bot_sends_nothing(tmp_path, repo, braked):
    lab = braked("moderate = true\n")
    lab.post(patches(repo, tmp_path / "refused", 1, count=3))
    assert lab.poll().returncode == 0 and outbox(lab, "drop", "1").returncode == 0
    assert lab.poll().returncode == 0 and lab.sink.received == []
    lab.config.write_text(lab.config.read_text().replace("moderate = true\n", "moderate = false\nmute = true\n"))
    lab.post(retitled(patches(repo, tmp_path / "refused-2", 2, count=3), "x86/boot: another series"))
    assert lab.poll().returncode == 0 and lab.sink.received == []
    assert "2  pending" in outbox(lab, "list").stdout
    lab.config.write_text(lab.config.read_text().replace("mute = true\n", ""))
    assert lab.poll().returncode == 0
    assert len(lab.replies(1)) == 1 and lab.poll().returncode == 0 and len(lab.sink.received) == 1


def test_a_reply_dropped_after_the_bot_read_it_does_not_go_out(tmp_path, repo, braked):
    """The operator drops a reply between the bot's reading the outbox and its sending: the
    sending transaction sees the drop, and nothing goes out."""
    from bot import config, daemon
    from bot.changes.series import parse_message
    from bot.daemon import delivery
    from bot.state.outbox import Delivery
    lab = braked("moderate = true\n")
    lab.post(patches(repo, tmp_path / "refused", 1, count=3))
    assert lab.poll().returncode == 0 and outbox(lab, "approve", "1").returncode == 0
    bot = daemon.make(config.load(lab.config))
    [reply] = bot.state.outbox.due()   # as deliver() reads it
    assert outbox(lab, "drop", "1").returncode == 0
    assert not delivery._once(bot.state, bot.mailing, reply, Delivery.REPLY, parse_message(reply.raw))
    assert lab.sink.received == [] and "1  dropped" in outbox(lab, "list").stdout


def test_replies_over_the_days_limit_wait_and_the_operator_is_told_once(tmp_path, repo, braked):
    lab = braked("moderate = false\nmax_per_day = 1\n")
    lab.post(patches(repo, tmp_path / "one", 1, count=3))
    lab.post(retitled(patches(repo, tmp_path / "two", 2, count=3, extra="_two"), "x86/boot: another series"))
    first = lab.poll()
    assert len(lab.replies(1)) == 1
    second = lab.poll()
    assert len(lab.sink.received) == 1
    said = [line for run in (first, second) for line in run.stderr.splitlines() if "max_per_day" in line]
    assert len(said) == 1 and "mail.max_per_day (1) reached" in said[0]
    assert "2  pending" in outbox(lab, "list").stdout