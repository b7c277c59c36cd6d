"""Table job: the checks to run. A job checks a mailed series (series_id) or a branch's new commits
(push_id); a retest is a job of the series its command mail answers. Its life: queued, then
running here or sent to workers, then done with a verdict; a failed attempt queues it again,
up to max_attempts, then it is failed (given up). A newer revision cancels a queued one."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.state.database import Database, now
from bot.words import COMMITS, ERROR, MAILED


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"       # checked here
    SENT = "sent"             # to the workers' queue
    DONE = "done"             # with a verdict
    CANCELLED = "cancelled"   # a newer revision of its series came first
    FAILED = "failed"         # given up after max_attempts


class Failure(StrEnum):
    """Why an attempt ended without a verdict."""
    LAB = "lab"                 # the lab failed (LabError, a verdict of error, its workers gone)
    UNREADABLE = "unreadable"   # its series or its branch could not be read now
    BUG = "bug"                 # bootbot raised: its traceback is in the error
    CUT_SHORT = "cut-short"     # the bot, or every worker it was sent to, was killed in it


UNFINISHED = (JobState.QUEUED, JobState.RUNNING, JobState.SENT)


@dataclass(frozen=True)
class Job:
    id: int
    series_id: int | None
    push_id: int | None
    command_msgid: str | None   # the retest mail it answers
    entries: tuple[str, ...]    # the entries a retest names (none: those the change touches)
    state: JobState
    attempts: int
    verdict: str | None
    created: float
    error: str | None           # why its last attempt ended without a verdict
    error_kind: Failure | None
    result: str | None          # its result folder's name, under the state's results/
    task: str | None            # sent to workers: the task its answer comes back as
    queue: str | None           # the queue of the workers it was sent to
    sent: float | None
    waiting: str | None         # why it is not sent yet

    @property
    def kind(self) -> str:
        """Which kind of change it checks (bot/words.py: MAILED, COMMITS)."""
        return MAILED if self.series_id is not None else COMMITS

    def __str__(self) -> str:
        return f"series {self.series_id}" if self.kind == MAILED else f"push {self.push_id}"


class JobTable:
    def __init__(self, database: Database):
        self.database = database

    def queue(self, series_id: int | None = None, push_id: int | None = None, command_msgid: str | None = None,
              entries: list[str] | tuple[str, ...] = ()) -> None:
        """A job for a change; a command mail's once."""
        with self.database.transaction():
            self.database.execute("INSERT OR IGNORE INTO job (series_id, push_id, command_msgid, entries, state, "
                                  "created) VALUES (?, ?, ?, ?, ?, ?)", series_id, push_id, command_msgid,
                                  " ".join(entries), JobState.QUEUED, now())

    def get(self, job_id: int) -> Job:
        return _job(self.database.row("SELECT * FROM job WHERE id = ?", job_id))

    def in_state(self, *states: JobState) -> list[Job]:
        marks = ", ".join("?" * len(states))
        return [_job(r) for r in self.database.rows(f"SELECT * FROM job WHERE state IN ({marks}) ORDER BY id", *states)]

    def start(self, job: Job) -> int:
        """Runs it here; the attempt it is."""
        with self.database.transaction():
            self.database.execute("UPDATE job SET state = ?, attempts = attempts + 1 WHERE id = ?", JobState.RUNNING,
                                  job.id)
        return job.attempts + 1

    def done(self, job: Job, verdict: str, result: str) -> None:
        with self.database.transaction():
            self.database.execute("UPDATE job SET state = ?, verdict = ?, result = ?, error = NULL, error_kind = NULL "
                                  "WHERE id = ?", JobState.DONE, verdict, result, job.id)

    def failed(self, job: Job, attempt: int, error: str, kind: Failure, max_attempts: int) -> JobState:
        """An attempt that ended without a verdict: queued again, or given up after max_attempts."""
        state = JobState.FAILED if attempt >= max_attempts else JobState.QUEUED
        with self.database.transaction():
            self.database.execute("UPDATE job SET state = ?, attempts = ?, error = ?, error_kind = ? WHERE id = ?",
                                  state, attempt, error, kind, job.id)
        return state

    def requeue_cut_short(self, max_attempts: int, sent_too: bool) -> list[Job]:
        """Jobs a crash or a kill left running (only one process runs cycles, so none is running
        now) are queued again, but for those that had their max_attempts (a check that kills the
        bot every time must not hold up the queue), which are given up and returned. `sent_too`:
        jobs sent to workers are checked here (the broker was taken away)."""
        with self.database.transaction():
            if sent_too:
                self.database.execute("UPDATE job SET state = ? WHERE state = ?", JobState.QUEUED, JobState.SENT)
            given_up = self.database.execute(
                "UPDATE job SET state = ?, error_kind = ?, error = 'attempt ' || attempts || ' cut short (the bot was "
                "killed or crashed)' WHERE state = ? AND attempts >= ? RETURNING *", JobState.FAILED, Failure.CUT_SHORT,
                JobState.RUNNING, max_attempts).fetchall()
            self.database.execute("UPDATE job SET state = ? WHERE state = ?", JobState.QUEUED, JobState.RUNNING)
        return [_job(r) for r in given_up]

    def sent_to(self, job: Job, attempt: int, task: str, queue: str) -> None:
        with self.database.transaction():
            self.database.execute("UPDATE job SET state = ?, attempts = ?, task = ?, queue = ?, sent = ?, "
                                  "waiting = NULL WHERE id = ?", JobState.SENT, attempt, task, queue, now(), job.id)

    def waits(self, reason: str, job: Job | None = None) -> None:
        """Why `job` (else every queued job) is not sent yet."""
        with self.database.transaction():
            if job is None:
                self.database.execute("UPDATE job SET waiting = ? WHERE state = ?", reason, JobState.QUEUED)
            else:
                self.database.execute("UPDATE job SET waiting = ? WHERE id = ?", reason, job.id)

    def cancel_queued(self, series_id: int) -> None:
        with self.database.transaction():
            self.database.execute("UPDATE job SET state = ? WHERE series_id = ? AND state = ?", JobState.CANCELLED,
                                  series_id, JobState.QUEUED)

    def commands_in_thread(self, thread: str) -> int:
        """How many command mails of a series thread were taken as jobs."""
        return self.database.value("SELECT COUNT(*) FROM job j JOIN series s ON j.series_id = s.id "
                                   "WHERE s.thread = ? AND j.command_msgid IS NOT NULL", thread)

    def lab_errors_in_a_row(self) -> int:
        """How many of the newest jobs whose last attempt ended, ended by the lab: a verdict of
        error, or an attempt given up or to be tried again after a lab failure."""
        ended = [r[0] for r in self.database.rows(
            "SELECT verdict = ? OR error_kind = ? FROM job WHERE state IN (?, ?) OR error IS NOT NULL "
            "ORDER BY id DESC LIMIT 100", ERROR, Failure.LAB, JobState.DONE, JobState.FAILED)]
        return next((n for n, lab in enumerate(ended) if not lab), len(ended))


def _job(row) -> Job:
    data = dict(row)
    return Job(**{**data, "entries": tuple(data["entries"].split()), "state": JobState(data["state"]),
                  "error_kind": Failure(data["error_kind"]) if data["error_kind"] else None})
