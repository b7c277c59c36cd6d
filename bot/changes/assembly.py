"""From archive messages to series and jobs: patches grouped by thread and `[PATCH vN M/N]`,
queued once complete, superseded by a newer revision, given up as partial after a grace time;
and `@bootbot` commands in a series' thread turned into jobs."""
from __future__ import annotations

import email.utils
import logging
from dataclasses import dataclass

import b4

from bot import timebox
from bot.changes.change import Change
from bot.changes.series import SeriesError, from_messages, parse_message
from bot.mail import commands
from bot.state import State, full, now
from bot.state.messages import StoredMessage
from bot.state.series import SeriesRecord, SeriesState

log = logging.getLogger("bootbot.assembly")


@dataclass(frozen=True)
class Policy:
    own_addresses: list[str]
    maintainers: list[str]
    require_dkim: bool
    grace_seconds: float       # how long to wait for the rest of a series
    commands_per_thread: int
    read_seconds: float        # reading one mail or series, at most: past it, the input is hostile


def take_new_messages(state: State, policy: Policy) -> None:
    """Files each mail not filed yet as a patch or a command, one transaction per mail."""
    for msgid in state.messages.unfiled():
        with state.transaction():
            message = state.messages.get(msgid)
            try:
                with state.database.savepoint():   # none of its half-filed rows stay when it raises
                    if message is not None:
                        _take(state, message, policy)
            except Exception as e:   # anyone can post anything: one bad mail must not stall the queue
                if full(e):   # but a full disk is no fault of the mail: it stays unfiled, filed next cycle
                    raise
                log.exception("message %s could not be filed; skipped", msgid)
            state.messages.filed(msgid)


@dataclass(frozen=True)
class Reading:
    """What filing needs of one mail, read in a child process with a deadline (bot/timebox.py)."""
    patch: bool
    reply: bool
    subject: str                # without tags, to match later revisions
    revision: int
    expected: int
    counter: int
    author: str
    sender: str
    wanted: tuple[commands.Command, ...]
    refusal: str | None         # why its commands are not obeyed: automated or not authorized


def read(raw: bytes, policy: Policy, commands_matter: bool) -> Reading:
    parsed = parse_message(raw)
    subject = b4.LoreSubject(str(parsed.get("Subject", "")))
    sender = str(parsed.get("From", ""))
    wanted = commands.parse(commands.plain_text(parsed)) if subject.reply and commands_matter else []
    refusal = None
    if wanted and commands.is_automated(parsed, policy.own_addresses):
        refusal = "automated mail"
    elif wanted:
        allowed, why = commands.authorized(raw, policy.maintainers, policy.require_dkim)
        refusal = None if allowed else why
    return Reading(subject.patch, subject.reply, subject.subject, subject.revision, subject.expected,
                   subject.counter, email.utils.parseaddr(sender)[1].lower(), sender, tuple(wanted), refusal)


def _take(state: State, message: StoredMessage, policy: Policy) -> None:
    series = state.series.newest_in_thread(message.thread)
    reading = timebox.call(read, message.raw, policy, series is not None, seconds=policy.read_seconds)
    if reading.patch and not reading.reply:
        state.series.file_patch(message.msgid, message.thread, reading.subject, reading.author, reading.revision,
                                reading.expected, reading.counter)
    elif reading.wanted and series is not None:   # commands count only in a series' thread
        _file_command(state, message, series, reading, policy)


def _file_command(state: State, message: StoredMessage, series: SeriesRecord, reading: Reading, policy: Policy) -> None:
    if reading.refusal:
        log.info("command from %s in %s ignored: %s", reading.sender, message.msgid, reading.refusal)
        return
    asked = state.jobs.commands_in_thread(message.thread)
    if asked >= policy.commands_per_thread:
        log.info("command in %s ignored: thread already had %d", message.msgid, asked)
        return
    entries = sorted({name for command in reading.wanted for name in command.entries})
    state.jobs.queue(series_id=state.series.newest_revision(series).id, command_msgid=message.msgid, entries=entries)


def queue_complete_series(state: State, policy: Policy, touches_boot_path) -> None:
    """Queues each complete series (or records it as skipped when it touches no boot path),
    supersedes older revisions still queued, and gives up on series incomplete past the grace."""
    for series in state.series.waiting():
        count = state.series.patches(series.id)
        if count < series.expected:
            if now() - series.first_seen > policy.grace_seconds:
                state.series.set_state(series.id, SeriesState.PARTIAL)
                log.info("series %s: %d of %d patches after the grace time; left partial",
                         series.head, count, series.expected)
            continue
        try:
            checked = touches_boot_path(load(state, series, policy.read_seconds))
            outcome = SeriesState.QUEUED if checked else SeriesState.SKIPPED
        except SeriesError as e:
            log.warning("series %s unreadable: %s", series.head, e)
            outcome = SeriesState.PARTIAL
        except Exception as e:   # whatever one series does, the others go on
            if full(e):
                raise
            log.exception("series %s could not be assessed; set aside", series.head)
            outcome = SeriesState.FAILED
        with state.transaction():
            state.series.set_state(series.id, outcome)
            if outcome == SeriesState.QUEUED:
                for older in state.series.supersede_older(series):
                    state.jobs.cancel_queued(older)
                state.jobs.queue(series_id=series.id)


def load(state: State, series: SeriesRecord, seconds: float) -> Change:
    """The series as b4 reads it from its thread's mails: patches, cover and replies (trailers)."""
    try:
        return timebox.call(_series_of, state.messages.of_thread(series.thread), f"<{series.thread}>", series.version,
                            seconds=seconds)
    except timebox.Overrun as e:
        raise SeriesError(f"series {series.thread}: {e}") from None


def _series_of(raws: list[bytes], source: str, version: int) -> Change:
    """The series of a thread's mails; one Python cannot read (a reply, say) is left out, lest
    anyone could stop a series being checked by answering it with a broken mail."""
    messages = []
    for raw in raws:
        try:
            messages.append(parse_message(raw))
        except SeriesError as e:
            log.warning("a mail of %s left out: %s", source, e)
    return from_messages(messages, source, version)
