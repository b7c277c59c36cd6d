"""bot/state/jobs.py on a database of its own: a job's life, and how its attempts end."""
from __future__ import annotations

import pytest

from bot.state import State
from bot.state.jobs import Failure, JobState
from bot.words import COMMITS, ERROR, MAILED, PASS


@pytest.fixture
def state(tmp_path) -> State:
    return State(tmp_path / "bootbot.sqlite3")


def test_a_change_is_queued_once_per_command_mail(state):
    state.jobs.queue(series_id=1)
    state.jobs.queue(push_id=7)
    state.jobs.queue(series_id=1, command_msgid="retest@example.org", entries=["pvh", "bios"])
    state.jobs.queue(series_id=1, command_msgid="retest@example.org", entries=["pvh"])   # the same mail again
    series, push, retest = state.jobs.in_state(JobState.QUEUED)
    assert (series.kind, push.kind, str(series), str(push)) == (MAILED, COMMITS, "series 1", "push 7")
    assert retest.entries == ("pvh", "bios") and retest.command_msgid == "retest@example.org"


def test_an_attempt_without_verdict_is_tried_again_until_max_attempts(state):
    state.jobs.queue(series_id=1)
    [job] = state.jobs.in_state(JobState.QUEUED)
    assert state.jobs.start(job) == 1 and state.jobs.get(job.id).state == JobState.RUNNING
    assert state.jobs.failed(job, 1, "LabError: no tree", Failure.LAB, max_attempts=2) == JobState.QUEUED
    job = state.jobs.get(job.id)
    assert (job.attempts, job.error, job.error_kind) == (1, "LabError: no tree", Failure.LAB)
    assert state.jobs.start(job) == 2
    assert state.jobs.failed(job, 2, "Traceback ...", Failure.BUG, max_attempts=2) == JobState.FAILED
    assert state.jobs.get(job.id).error_kind == Failure.BUG


def test_a_done_job_forgets_its_last_failure(state):
    state.jobs.queue(series_id=1)
    [job] = state.jobs.in_state(JobState.QUEUED)
    state.jobs.failed(job, state.jobs.start(job), "LabError: x", Failure.LAB, max_attempts=3)
    state.jobs.done(state.jobs.get(job.id), PASS, "20261204-120000-abcdef")
    done = state.jobs.get(job.id)
    assert (done.state, done.verdict, done.result, done.error, done.error_kind) == \
        (JobState.DONE, PASS, "20261204-120000-abcdef", None, None)


def test_jobs_a_crash_left_running_run_again_unless_they_had_their_attempts(state):
    for series_id in (1, 2, 3):
        state.jobs.queue(series_id=series_id)
    first, second, third = state.jobs.in_state(JobState.QUEUED)
    state.jobs.start(first)
    state.jobs.start(state.jobs.get(second.id))
    state.jobs.start(state.jobs.get(second.id))   # its second attempt, cut short too
    state.jobs.sent_to(third, 1, "job-3-1", "bootbot.abc")
    given_up = state.jobs.requeue_cut_short(max_attempts=2, sent_too=False)
    assert [j.id for j in given_up] == [second.id] and given_up[0].error == "attempt 2 cut short (the bot was " \
        "killed or crashed)" and given_up[0].error_kind == Failure.CUT_SHORT
    assert [(j.id, j.state) for j in state.jobs.in_state(*JobState)] == \
        [(first.id, JobState.QUEUED), (second.id, JobState.FAILED), (third.id, JobState.SENT)]
    state.jobs.requeue_cut_short(max_attempts=2, sent_too=True)   # the broker was taken away
    assert state.jobs.get(third.id).state == JobState.QUEUED


def test_lab_errors_in_a_row_are_counted_from_the_newest_ended_job(state):
    outcomes = [("done", PASS), ("done", ERROR), ("lab", None), ("bug", None), ("lab", None), ("done", ERROR)]
    for n, (how, verdict) in enumerate(outcomes, 1):
        state.jobs.queue(series_id=n)
        job = state.jobs.get(n)
        if how == "done":
            state.jobs.done(job, verdict, f"folder-{n}")
        else:
            state.jobs.failed(job, 1, "said", Failure(how), max_attempts=3)
    assert state.jobs.lab_errors_in_a_row() == 2   # job 6 (error), job 5 (lab); job 4 was a bug
    state.jobs.queue(series_id=7)   # queued, not ended: not counted
    assert state.jobs.lab_errors_in_a_row() == 2


def test_a_newer_revision_cancels_the_queued_job_of_an_older_one(state):
    state.jobs.queue(series_id=1)
    state.jobs.queue(series_id=1, command_msgid="retest@example.org")
    [first, retest] = state.jobs.in_state(JobState.QUEUED)
    state.jobs.start(retest)
    state.jobs.cancel_queued(1)
    assert state.jobs.get(first.id).state == JobState.CANCELLED and state.jobs.get(retest.id).state == JobState.RUNNING
