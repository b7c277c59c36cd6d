"""The job life cycle. Branch heads and complete series become queued jobs (a change each); a
queued job is checked here, or sent to a worker whose answer is taken at a later cycle; its
result folder is recorded with the reply it calls for, in one transaction. An attempt that gives
no verdict (the check raised, the lab failed, a worker vanished) is tried again at the next
cycle, up to max_attempts, then given up; never mailed. A full disk is not the job's fault: it
stops the cycle, and the job runs again as if killed."""
from __future__ import annotations

import logging
import shlex
from pathlib import Path

from bot import folders, queue
from bot.changes import assembly
from bot.config import ConfigError
from bot.daemon import replies
from bot.queue.assignment import Assignment, Fetch, failure_of
from bot.sources import Unreachable
from bot.sources.branch import Branch
from bot.sources.inbox import thread_link
from bot.state import full
from bot.state.jobs import Failure, Job, JobState
from bot.state.pushes import PushState
from bot.state.series import SeriesState
from bot.verdicts import check
from bot.words import ERROR, MAILED

log = logging.getLogger("bootbot.jobs")


def queue_pushes(bot) -> None:
    """Queues each new branch head whose commits touch a boot path of its tree; records the
    others as skipped. A push of a source no longer configured waits for it to come back."""
    for push in bot.state.pushes.waiting():
        source = replies.source_named(bot.sources, push.source)
        if not isinstance(source, Branch):
            continue
        try:
            change = source.change(push.base, push.head)
            outcome = PushState.QUEUED if bot.settings.checkable(change.files, source.tree_path) else PushState.SKIPPED
        except Unreachable as e:   # git could not say now: it waits for the next cycle
            log.warning("push %s of %s waits: %s", push.head[:12], source.name, e)
            continue
        except Exception as e:   # whatever one push does, the others go on
            if full(e):
                raise
            log.exception("push %s of %s could not be assessed; set aside", push.head, source.name)
            outcome = PushState.FAILED
        with bot.state.transaction():
            bot.state.pushes.set_state(push.id, outcome)
            if outcome == PushState.QUEUED:
                bot.state.jobs.queue(push_id=push.id)


def run(bot) -> None:
    """The queued jobs checked: here, or on workers when the bot has them."""
    for job in bot.state.jobs.requeue_cut_short(bot.max_attempts, sent_too=bot.dispatch is None):
        log.error("job %d: given up: %s", job.id, job.error)
    if bot.dispatch is not None:
        _on_workers(bot)
        return
    for job in bot.state.jobs.in_state(JobState.QUEUED):
        attempt = bot.state.jobs.start(job)
        log.info("job %d: checking %s (attempt %d)", job.id, job, attempt)
        try:
            assignment = assign(bot, job)
            folder = check.check(assignment.change, bot.settings, only=assignment.only,
                                 tree_path=_tree_path(bot, assignment), named=assignment.named,
                                 origin=assignment.origin)
        except Exception as e:   # no verdict (a broken tree, an unreadable series): not the author's to hear
            _failed(bot, job, attempt, *failure_of(e), error=e)
            continue
        _record(bot, job, attempt, folder)


def assign(bot, job: Job) -> Assignment:
    """What the check of `job` is given."""
    only = list(job.entries) or None
    if job.kind == MAILED:
        head, name = bot.state.series.head_and_source(job.series_id)
        source = replies.source_named(bot.sources, name)
        archive = source.url if source else ""
        origin = {"source": name, "archive": archive, "link": thread_link(archive, head)}
        change = assembly.load(bot.state, bot.state.series.get(job.series_id), bot.policy.read_seconds)
        return Assignment(job.id, change, only, shlex.quote(head), origin, max_starts=bot.max_attempts)
    push = bot.state.pushes.get(job.push_id)
    source = replies.source_named(bot.sources, push.source)
    if not isinstance(source, Branch):
        raise ConfigError(f"source {push.source} is no longer a configured branch")
    return Assignment(job.id, source.change(push.base, push.head), only, "", {"source": source.name, "link": ""},
                      Fetch(source.url, source.branch, push.head, source.tree_kind), bot.max_attempts)


def _tree_path(bot, assignment: Assignment) -> Path | None:
    """A branch's tree: the configured one of its kind, where its source fetched its commits."""
    return bot.settings.site(assignment.fetch.kind).path if assignment.fetch else None


def _record(bot, job: Job, attempt: int, folder: Path) -> None:
    """A check's result folder, from here or from a worker: the job done and its reply in the
    outbox (one transaction), or tried again after a lab error."""
    try:
        outcome = folders.read(folder)
        reply = replies.reply(bot.state, bot.sources, bot.replying, job, outcome, folder)
    except Exception as e:
        _failed(bot, job, attempt, *failure_of(e), error=e)
        return
    if outcome.verdict == ERROR and attempt < bot.max_attempts:   # the lab may be well again next cycle
        _failed(bot, job, attempt, Failure.LAB, f"LabError: {'; '.join(outcome.detail[:2])} (see {folder})")
        return
    with bot.state.transaction():
        bot.state.jobs.done(job, outcome.verdict, folder.name)
        if job.kind == MAILED:
            bot.state.series.set_state(job.series_id, SeriesState.CHECKED)
        else:
            bot.state.pushes.set_state(job.push_id, PushState.CHECKED)
        if reply is not None:
            bot.state.outbox.add(job.id, reply["Message-ID"], bytes(reply), held=bool(bot.mailing.moderate))
    log.info("job %d: %s", job.id, outcome.verdict)


def _failed(bot, job: Job, attempt: int, failure: Failure, said: str, error: BaseException | None = None) -> None:
    """Records an attempt that gave no verdict: queued again for the next cycle, or given up after
    max_attempts. The lab's failure in one line, a bug of bootbot's with its traceback; never a
    mail."""
    if error is not None and full(error):
        raise error
    state = bot.state.jobs.failed(job, attempt, said, failure, bot.max_attempts)
    if failure == Failure.BUG:
        log.error("job %d: attempt %d of %d raised (a bug of bootbot's):\n%s", job.id, attempt, bot.max_attempts, said)
    elif state == JobState.FAILED:
        log.error("job %d: given up after %d attempts: %s", job.id, attempt, said)
    else:
        log.warning("job %d: attempt %d of %d failed, tried again next cycle: %s", job.id, attempt, bot.max_attempts,
                    said)


def _on_workers(bot) -> None:
    """Answers first (a worker freed takes the next job), then the queued jobs sent. A broker
    away stops both: the jobs wait here, sent when it is back."""
    try:
        live = bot.dispatch.live()
        _take_answers(bot, live)
        _send(bot, live)
    except queue.BrokerAway as e:
        bot.state.jobs.waits(f"the broker is unreachable: {e}")
        log.warning("the broker is unreachable, jobs wait here until it is back: %s", e)


def _take_answers(bot, live: list[dict]) -> None:
    serving = {w["queue"] for w in live}
    for job in bot.state.jobs.in_state(JobState.SENT):
        try:
            answer = bot.dispatch.answer(job.task)
            if answer.waiting:
                if job.queue not in serving:   # its workers went away before taking it
                    _failed(bot, job, job.attempts, Failure.LAB, f"no worker of {job.queue} is alive to take it")
                continue
            log.info("job %d: answered by %s", job.id, answer.worker)
            if answer.error:
                _failed(bot, job, job.attempts, answer.failure, answer.error)
            else:
                _record(bot, job, job.attempts, folders.unpack(answer.folder, bot.settings.state.results))
        except queue.BrokerAway:
            raise
        except Exception as e:   # an answer that is no result folder: a failed attempt, like a check that raised
            _failed(bot, job, job.attempts, *failure_of(e), error=e)
        bot.dispatch.forget(job.task)


def _send(bot, live: list[dict]) -> None:
    for job in bot.state.jobs.in_state(JobState.QUEUED):
        attempt = job.attempts + 1
        try:
            assignment = assign(bot, job)
            needs = queue.needs(bot.settings, assignment.change, assignment.only, _tree_path(bot, assignment),
                                bot.dispatch.extra_needs)
        except Exception as e:
            _failed(bot, job, attempt, *failure_of(e), error=e)
            continue
        task = f"job-{job.id}-{attempt}"
        # Recorded only once sent (the broker answers within its timeouts); a crash between the
        # two sends it again: checked twice, answered once.
        with bot.state.transaction():
            sent_to = bot.dispatch.send(task, assignment, needs, live)
            waits = "" if sent_to else queue.unserved(needs, live)
            if sent_to:
                bot.state.jobs.sent_to(job, attempt, task, sent_to)
            else:
                bot.state.jobs.waits(waits, job)
        if sent_to:
            log.info("job %d: %s sent to %s (attempt %d)", job.id, job, sent_to, attempt)
        else:
            log.info("job %d waits: %s", job.id, waits)

