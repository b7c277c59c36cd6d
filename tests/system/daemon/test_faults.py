"""The bot under faults, end to end against a real archive and SMTP server, with no kernel to build:
a check that raises instead of giving a verdict, a check that kills the bot, and a full disk
under state/ (SQLite's page limit, and a real tmpfs filled to the brim)."""
from __future__ import annotations

import email
import errno
import logging
import os
import sqlite3
import subprocess
import sys
from email.policy import default
from pathlib import Path

import pytest
from harness import ROOT, Faulty, cli, ids
from tiny_tree import patches

from bot import config as configuration
from bot import daemon
from bot.state import StateFull

MAX_ATTEMPTS = 2


@pytest.fixture
def faulty(tmp_path):
    made = Faulty(tmp_path)
    yield made
    made.close()


def broken_and_refused(faulty: Faulty, repo: Path, tmp_path: Path) -> None:
    """Job 1: a series whose check raises; job 2, behind it: a series refused, with a reply."""
    faulty.post(patches(repo, tmp_path / "broken", 1, count=1, cover=False, extra="_broken"))
    faulty.post(patches(repo, tmp_path / "refused", 1, count=3))


def test_a_check_that_raises_is_retried_then_given_up_and_holds_up_nothing(faulty, repo, tmp_path):
    broken_and_refused(faulty, repo, tmp_path)
    first = faulty.poll()
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    [said] = [line for line in first.stderr.splitlines() if "job 1:" in line and "failed" in line]
    assert "attempt 1 of 2" in said and "LabError" in said and "is not a git tree" in said
    [reply] = faulty.sink.wait_for(1)   # the job behind it ran, and its reply went out
    assert "REFUSED" in reply.message.get_content()
    [(_, state, attempts, _, error), done] = faulty.jobs()
    assert (state, attempts) == ("queued", 1) and "is not a git tree" in error
    assert done[1:4] == ("done", 1, "refused")

    second = faulty.poll()   # the last attempt
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    [said] = [line for line in second.stderr.splitlines() if "job 1:" in line and "given up" in line]
    assert "after 2 attempts" in said and "is not a git tree" in said
    assert faulty.jobs()[0][1:3] == ("failed", 2)

    third = faulty.poll()   # given up: not tried again, not mailed
    assert third.returncode == 0, third.stderr
    assert "checking series" not in third.stderr and "job 1" not in third.stderr
    assert faulty.jobs()[0][1:3] == ("failed", 2)
    assert faulty.count("outbox") == 1 and len(faulty.sink.received) == 1


def test_a_bug_of_bootbots_is_told_with_its_traceback_and_kept_in_the_jobs_record(faulty, repo, tmp_path):
    """A check that raises what no lab failure raises: a bug, told whole, unlike a lab error's line."""
    broken_and_refused(faulty, repo, tmp_path)
    run = cli("poll", "--once", config=faulty.config, wrapped=("bot.verdicts.check:check:1:raise",))
    assert run.returncode == 0, run.stderr
    assert "job 1: attempt 1 of 2 raised (a bug of bootbot's):\nTraceback (most recent call last):" in run.stderr
    assert "RuntimeError: injected" in run.stderr
    with faulty.db() as db:
        kind, error = db.execute("SELECT error_kind, error FROM job WHERE id = 1").fetchone()
    assert kind == "bug" and error.startswith("Traceback (most recent call last):") and error.endswith("injected")
    assert faulty.poll().returncode == 0   # tried again: a lab error now (no tree), one line
    with faulty.db() as db:
        assert db.execute("SELECT error_kind, state FROM job WHERE id = 1").fetchone() == ("lab", "failed")


def test_a_lab_error_verdict_is_checked_again_next_cycle_and_kept_after_the_last(tmp_path, repo):
    """The tiny tree has no Makefile: its base does not build, an ERROR verdict, which says
    nothing about the series. The lab may be well again later: it is tried again, up to
    max_attempts, and never mailed."""
    lab = Faulty(tmp_path / "lab", tree=repo)
    try:
        lab.post(patches(repo, tmp_path / "p", 1, count=1, cover=False))
        first = lab.poll()
        assert first.returncode == 0, first.stderr
        [said] = [line for line in first.stderr.splitlines() if "job 1:" in line and "attempt 1 of 2" in line]
        assert "the base tree does not build" in said
        assert lab.states() == [("queued", 1)]
        assert lab.poll().returncode == 0
        assert lab.jobs()[0][1:4] == ("done", 2, "error") and lab.sink.received == []
    finally:
        lab.close()


# The bot, with a check that kills it (SIGKILL, as the OOM killer would) for one-patch series.
KILL_IN_ONE_PATCH_CHECKS = """
import os, signal, sys
from bot import cli
from bot.verdicts import check as check_module
real = check_module.check
def check(series, *args, **kwargs):
    if len(series.patches) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(series, *args, **kwargs)
check_module.check = check
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_check_that_kills_the_bot_every_time_is_given_up_after_max_attempts(faulty, repo, tmp_path):
    broken_and_refused(faulty, repo, tmp_path)

    def poll() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", KILL_IN_ONE_PATCH_CHECKS, "--config", str(faulty.config), "poll",
                               "--once"], cwd=ROOT, capture_output=True, text=True, timeout=600)

    for attempt in range(1, MAX_ATTEMPTS + 1):   # killed in job 1, so job 2 behind it waits
        assert poll().returncode == -9
        assert faulty.states() == [("running", attempt), ("queued", 0)]
    given_up = poll()
    assert given_up.returncode == 0, given_up.stderr
    [said] = [line for line in given_up.stderr.splitlines() if "job 1:" in line]
    assert "given up" in said and "attempt 2 cut short" in said
    assert "checking series 1" not in given_up.stderr
    [reply] = faulty.sink.wait_for(1)
    assert "REFUSED" in reply.message.get_content()
    assert faulty.states() == [("failed", 2), ("done", 1)]
    assert poll().returncode == 0
    assert faulty.states() == [("failed", 2), ("done", 1)]
    assert len(faulty.sink.received) == 1


# A full disk under state/, for real: SQLite's page limit, then a tmpfs filled to the brim.

def long_cover(mails: list[Path]) -> list[Path]:
    """The series with a cover subject long enough (about 6 kB) that its series row, and the
    reply quoting it, spill onto pages of their own: each step of a cycle then needs new pages."""
    cover = mails[0]
    cover.write_text(cover.read_text().replace("*** SUBJECT HERE ***", "x86/boot: " + "very " * 1200 + "long"))
    return mails


def snapshot(faulty: Faulty) -> tuple:
    """What the database holds, checked to be whole: no step half-written, nothing doubled."""
    with faulty.db() as db:
        def rows(sql: str) -> list:
            return db.execute(sql).fetchall()
        messages = rows("SELECT msgid, handled FROM message")
        assert len(messages) in (0, 4)   # the archive's batch: all four or none
        assert bool(rows("SELECT * FROM source_cursor")) == bool(messages)   # the cursor moves with them
        filed = {m for (m,) in rows("SELECT head FROM series UNION SELECT msgid FROM patch")}
        assert filed == {msgid for msgid, handled in messages if handled}   # handled is filed, and only that
        series = rows("SELECT state FROM series")
        jobs = rows("SELECT state FROM job")
        outbox = rows("SELECT state FROM outbox")
        assert len(series) <= 1 and len(jobs) <= 1 and len(outbox) <= 1
        for (state,) in series:   # queued with its job, in one step
            assert (state in ("queued", "checked")) == bool(jobs)
        for (state,) in jobs:   # done, checked and replied, in one step
            assert (state == "done") == (series[0][0] == "checked") == bool(outbox)
        assert len(faulty.sink.received) == [o == "sent" for (o,) in outbox].count(True)
        return (len(messages), sum(h for _, h in messages), series, jobs, outbox)


def test_each_step_cut_short_by_a_full_database_is_rolled_back_and_the_next_cycle_carries_on(
        tmp_path, repo, caplog):
    faulty = Faulty(tmp_path / "lab", max_attempts=10)   # the sweep below cuts one job short more than once
    try:
        faulty.post(long_cover(patches(repo, tmp_path / "refused", 1, count=3)))
        bot = daemon.make(configuration.load(faulty.config))
        caplog.set_level(logging.INFO)
        # SQLite's own limit: past `pages`, any write fails with SQLITE_FULL, as on a full disk. One
        # page more each cycle, so the fault falls on every step of the cycle in turn.
        pages = bot.state.database.one("PRAGMA page_count")[0]
        bot.state.database.db.execute(f"PRAGMA max_page_count = {pages}")
        daemon._scheduled_cycle(bot)   # as serve runs a cycle: one line said, nothing raised
        [said] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert said.getMessage() == "state/ is full: database or disk is full; the next cycle carries on"
        assert not said.exc_info
        caplog.clear()
        faults = []
        for pages in range(pages, pages + 100):
            bot.state.database.db.execute(f"PRAGMA max_page_count = {pages}")
            try:
                daemon.cycle(bot)
                break
            except StateFull as e:
                assert str(e) == "state/ is full: database or disk is full"
            faults.append(snapshot(faulty))
        else:
            pytest.fail("a cycle never completed")
        stopped_in = {   # what the database held when the fault stopped each step
            "the archive": (0, 0, [], [], []),
            "filing": (4, 0, [], [], []),
            "queueing": (4, 4, [("waiting",)], [], []),
            "the check's result": (4, 4, [("queued",)], [("running",)], []),
            "delivery": (4, 4, [("checked",)], [("done",)], [("pending",)])}
        assert [step for step, held in stopped_in.items() if held not in faults] == [], faults

        bot.state.database.db.execute("PRAGMA max_page_count = 1073741823")
        daemon.cycle(bot)   # nothing left to do, and nothing done twice
        assert snapshot(faulty) == (4, 4, [("checked",)], [("done",)], [("sent",)])
        [reply] = faulty.sink.received
        [cover] = [email.message_from_bytes(p.read_bytes(), policy=default)
                   for p in (tmp_path / "refused").glob("*0000-*")]
        assert ids(reply.message["In-Reply-To"]) == ids(cover["Message-ID"])
        assert "REFUSED" in reply.message.get_content()
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        bot.state.close()
    finally:
        faulty.close()


@pytest.fixture
def on_tmpfs(tmp_path):
    """A lab whose state/ is a small tmpfs of its own, to be filled for real."""
    faulty = Faulty(tmp_path / "lab")
    faulty.state.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(faulty.state)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        faulty.close()
        pytest.fail(f"cannot mount a tmpfs on state/ (this test needs root): {mounted.stderr.strip()}")
    try:
        yield faulty
    finally:
        faulty.close()
        # Lazily: a failed test may still hold a file open there until its traceback is dropped.
        subprocess.run(["umount", "--lazy", str(faulty.state)], check=True)


def fill(folder: Path) -> Path:
    """Fills the file system of `folder` to its last block; returns the file that does it."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096):
            try:
                while True:
                    out.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    assert os.statvfs(folder).f_bavail == 0
    return filler


def held(db: sqlite3.Connection) -> list:
    return [db.execute(sql).fetchall() for sql in (
        "SELECT msgid, handled FROM message ORDER BY msgid", "SELECT * FROM source_cursor", "SELECT id, state FROM series",
        "SELECT id, state, attempts, verdict FROM job", "SELECT id, state, attempts, last_error FROM outbox")]


def poll_on_a_full_disk(faulty: Faulty, repo: Path, tmp_path: Path):
    """A reply left pending by an SMTP outage, then a poll with the SMTP server back and state/
    full. Returns that poll, the file filling state/, and a connection held open all along: it
    keeps SQLite's WAL and shared-memory files between the bot's runs, so that, once the WAL is
    emptied, the bot's first write must grow the WAL, and finds no room."""
    faulty.post(patches(repo, tmp_path / "refused", 1, count=3))
    faulty.sink.stop()
    first = faulty.poll()
    assert first.returncode == 0, first.stderr
    holder = sqlite3.connect(faulty.state / "bootbot.sqlite3")
    assert holder.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    before = held(holder)
    assert before[4][0][1:3] == ("pending", 1)
    filler = fill(faulty.state)
    faulty.sink.start()
    stopped = faulty.poll()
    assert held(holder) == before   # the step that hit the full disk left nothing behind
    assert faulty.sink.received == []   # and sent nothing it could not record as sent
    return stopped, filler, holder


def test_a_full_state_disk_stops_the_cycle_and_the_next_one_carries_on(on_tmpfs, repo, tmp_path):
    stopped, filler, holder = poll_on_a_full_disk(on_tmpfs, repo, tmp_path)
    assert stopped.returncode != 0
    assert "state/ is full: database or disk is full" in stopped.stderr
    filler.unlink()
    again = on_tmpfs.poll()
    assert again.returncode == 0, again.stderr
    assert len(on_tmpfs.sink.wait_for(1)) == 1
    assert held(holder)[4][0][1:3] == ("sent", 2)
    assert on_tmpfs.poll().returncode == 0
    assert len(on_tmpfs.sink.received) == 1
    holder.close()


def test_poll_once_says_a_full_state_disk_in_one_line(on_tmpfs, repo, tmp_path):
    stopped, _, holder = poll_on_a_full_disk(on_tmpfs, repo, tmp_path)
    holder.close()
    assert stopped.returncode != 0
    assert [line for line in stopped.stderr.splitlines() if "state/ is full" in line or "Traceback" in line] == \
        ["bootbot: state/ is full: database or disk is full"]


def test_lab_errors_in_a_row_raise_one_alarm_until_a_verdict_clears_it(faulty, repo, tmp_path):
    text = faulty.config.read_text().replace("[mail]\n", '[mail]\noperator = "ops@example.org"\n')
    faulty.config.write_text(text + "[health]\nlab_errors = 1\n")
    faulty.post(patches(repo, tmp_path / "broken", 1, count=1, cover=False, extra="_broken"))
    assert faulty.poll().returncode == 0
    [alarm] = faulty.sink.wait_for(1)
    assert alarm.recipients == ["ops@example.org"]
    assert alarm.message["Subject"] == "bootbot alarm: the last 1 checks ended in lab errors, not verdicts"
    assert faulty.poll().returncode == 0   # the same job again, the same condition: no second alarm
    assert len(faulty.sink.received) == 1
    faulty.post(patches(repo, tmp_path / "refused", 1, count=3))
    assert faulty.poll().returncode == 0   # a verdict, the newest: cleared
    assert [m.recipients for m in faulty.sink.wait_for(2)][1:] == [["ann@example.org", "xen-devel@lists.example.org"]]
    assert faulty.count("notice") == 0
