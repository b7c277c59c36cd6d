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
from bot.store import Store, full, now

log = logging.getLogger("bootbot.assembly")


@dataclass(frozen=True)
class Policy:
    own_addresses: list[str]
    maintainers: list[str]
    require_dkim: bool
    grace_seconds: float       # how long to wait for the rest of a series
    commands_per_thread: int
    read_seconds: float        # reading one mail or series, at most: past it, the input is hostile


def take_new_messages(store: Store, policy: Policy) -> None:
    """Files each unhandled message as a patch or a command, one transaction per message."""
    for row in store.rows("SELECT msgid FROM message WHERE handled = 0 ORDER BY rowid"):
        with store.transaction() as db:
            message = db.execute("SELECT * FROM message WHERE msgid = ?", (row["msgid"],)).fetchone()
            db.execute("SAVEPOINT take")
            try:
                _take(db, message, policy)
            except Exception as e:   # anyone can post anything: one bad mail must not stall the queue
                if full(e):   # but a full disk is no fault of the mail: it stays unhandled, filed next cycle
                    raise
                db.execute("ROLLBACK TO take")   # none of its half-filed rows stay
                log.exception("message %s could not be filed; skipped", message["msgid"])
            db.execute("RELEASE take")
            db.execute("UPDATE message SET handled = 1 WHERE msgid = ?", (message["msgid"],))


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


def _take(db, row, policy: Policy) -> None:
    series = db.execute("SELECT * FROM series WHERE thread = ? ORDER BY version DESC", (row["thread"],)).fetchone()
    reading = timebox.call(read, row["raw"], policy, series is not None, seconds=policy.read_seconds)
    if reading.patch and not reading.reply:
        _file_patch(db, row, reading)
    elif reading.wanted:
        _file_command(db, row, series, reading, policy)


def _file_patch(db, row, reading: Reading) -> None:
    db.execute("INSERT OR IGNORE INTO series (head, thread, subject, author, version, expected, state, first_seen) "
               "VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?)",
               (row["msgid"], row["thread"], reading.subject, reading.author, reading.revision, reading.expected, now()))
    series = db.execute("SELECT id, head FROM series WHERE thread = ? AND version = ? ORDER BY id",
                        (row["thread"], reading.revision)).fetchone()
    if reading.counter == 0 or row["msgid"] == row["thread"]:   # the cover, or the thread's first patch
        db.execute("UPDATE series SET head = ?, subject = ? WHERE id = ?", (row["msgid"], reading.subject, series["id"]))
    if reading.counter > 0:
        db.execute("INSERT OR IGNORE INTO patch (series_id, counter, msgid) VALUES (?, ?, ?)",
                   (series["id"], reading.counter, row["msgid"]))


def _file_command(db, row, series, reading: Reading, policy: Policy) -> None:
    if reading.refusal:
        log.info("command from %s in %s ignored: %s", reading.sender, row["msgid"], reading.refusal)
        return
    asked = db.execute("SELECT COUNT(*) FROM job j JOIN series s ON j.series_id = s.id "
                       "WHERE s.thread = ? AND j.command_msgid IS NOT NULL", (row["thread"],)).fetchone()[0]
    if asked >= policy.commands_per_thread:
        log.info("command in %s ignored: thread already had %d", row["msgid"], asked)
        return
    newest = _newest_revision(db, series)
    entries = sorted({name for command in reading.wanted for name in command.entries})
    db.execute("INSERT OR IGNORE INTO job (series_id, command_msgid, entries, state, created) "
               "VALUES (?, ?, ?, 'queued', ?)", (newest["id"], row["msgid"], " ".join(entries), now()))


def _newest_revision(db, series):
    return db.execute("SELECT * FROM series WHERE subject = ? AND author = ? AND state != 'waiting' "
                      "ORDER BY version DESC, id DESC", (series["subject"], series["author"])).fetchone() or series


def queue_complete_series(store: Store, policy: Policy, touches_boot_path) -> None:
    """Queues each complete series (or records it as skipped when it touches no boot path),
    supersedes older revisions still queued, and gives up on series incomplete past the grace."""
    for series in store.rows("SELECT * FROM series WHERE state = 'waiting'"):
        count = store.one("SELECT COUNT(*) FROM patch WHERE series_id = ?", series["id"])[0]
        if count < series["expected"]:
            if now() - series["first_seen"] > policy.grace_seconds:
                with store.transaction() as db:
                    db.execute("UPDATE series SET state = 'partial' WHERE id = ?", (series["id"],))
                log.info("series %s: %d of %d patches after the grace time; left partial",
                         series["head"], count, series["expected"])
            continue
        try:
            state = "queued" if touches_boot_path(load(store, series["id"], policy.read_seconds)) else "skipped"
        except SeriesError as e:
            log.warning("series %s unreadable: %s", series["head"], e)
            state = "partial"
        except Exception as e:   # whatever one series does, the others go on
            if full(e):
                raise
            log.exception("series %s could not be assessed; set aside", series["head"])
            state = "failed"
        with store.transaction() as db:
            db.execute("UPDATE series SET state = ? WHERE id = ?", (state, series["id"]))
            if state == "queued":
                _supersede(db, series)
                db.execute("INSERT INTO job (series_id, state, created) VALUES (?, 'queued', ?)", (series["id"], now()))


def _supersede(db, series) -> None:
    older = db.execute("SELECT id FROM series WHERE subject = ? AND author = ? AND version < ? AND id != ?",
                       (series["subject"], series["author"], series["version"], series["id"])).fetchall()
    for row in older:
        db.execute("UPDATE job SET state = 'cancelled' WHERE series_id = ? AND state = 'queued'", (row["id"],))
        db.execute("UPDATE series SET state = 'superseded' WHERE id = ? AND state IN ('waiting', 'queued')", (row["id"],))


def load(store: Store, series_id: int, seconds: float) -> Change:
    """The series as b4 reads it from its thread's messages: patches, cover and replies (trailers)."""
    series = store.one("SELECT thread, version FROM series WHERE id = ?", series_id)
    raws = [r["raw"] for r in store.rows("SELECT raw FROM message WHERE thread = ? ORDER BY rowid", series["thread"])]
    try:
        return timebox.call(_series_of, raws, f"<{series['thread']}>", series["version"], seconds=seconds)
    except timebox.Overrun as e:
        raise SeriesError(f"series {series['thread']}: {e}") from None


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
