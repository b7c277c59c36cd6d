"""From archive messages to series and jobs: patches grouped by thread and `[PATCH vN M/N]`,
queued once complete, superseded by a newer revision, given up as partial after a grace time;
and `@bootbot` commands in a series' thread turned into jobs."""
from __future__ import annotations

import email.utils
import logging
from dataclasses import dataclass

import b4

from bot import commands
from bot.series import Series, SeriesError, from_messages, parse_message
from bot.store import Store, full, now

log = logging.getLogger("bootbot.assembly")


@dataclass(frozen=True)
class Policy:
    own_addresses: list[str]
    maintainers: list[str]
    require_dkim: bool
    grace_seconds: float       # how long to wait for the rest of a series
    commands_per_thread: int


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


def _take(db, row, policy: Policy) -> None:
    parsed = parse_message(row["raw"])
    subject = b4.LoreSubject(str(parsed.get("Subject", "")))
    if subject.patch and not subject.reply:
        _file_patch(db, row, parsed, subject)
    elif subject.reply:
        _file_command(db, row, parsed, policy)


def _file_patch(db, row, parsed, subject) -> None:
    author = email.utils.parseaddr(str(parsed.get("From", "")))[1].lower()
    db.execute("INSERT OR IGNORE INTO series (head, thread, subject, author, version, expected, state, first_seen) "
               "VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?)",
               (row["msgid"], row["thread"], subject.subject, author, subject.revision, subject.expected, now()))
    series = db.execute("SELECT id, head FROM series WHERE thread = ? AND version = ? ORDER BY id",
                        (row["thread"], subject.revision)).fetchone()
    if subject.counter == 0 or row["msgid"] == row["thread"]:   # the cover, or the thread's first patch
        db.execute("UPDATE series SET head = ?, subject = ? WHERE id = ?", (row["msgid"], subject.subject, series["id"]))
    if subject.counter > 0:
        db.execute("INSERT OR IGNORE INTO patch (series_id, counter, msgid) VALUES (?, ?, ?)",
                   (series["id"], subject.counter, row["msgid"]))


def _file_command(db, row, parsed, policy: Policy) -> None:
    series = db.execute("SELECT * FROM series WHERE thread = ? ORDER BY version DESC", (row["thread"],)).fetchone()
    if series is None:
        return
    wanted = commands.parse(commands.plain_text(parsed))
    if not wanted:
        return
    sender = str(parsed.get("From", ""))
    if commands.is_automated(parsed, policy.own_addresses):
        log.info("command from automated mail %s ignored", row["msgid"])
        return
    allowed, why = commands.authorized(row["raw"], policy.maintainers, policy.require_dkim)
    if not allowed:
        log.info("command from %s in %s ignored: %s", sender, row["msgid"], why)
        return
    asked = db.execute("SELECT COUNT(*) FROM job j JOIN series s ON j.series_id = s.id "
                       "WHERE s.thread = ? AND j.command_msgid IS NOT NULL", (row["thread"],)).fetchone()[0]
    if asked >= policy.commands_per_thread:
        log.info("command in %s ignored: thread already had %d", row["msgid"], asked)
        return
    newest = _newest_revision(db, series)
    entries = sorted({name for command in wanted for name in command.entries})
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
            state = "queued" if touches_boot_path(load(store, series["id"])) else "skipped"
        except SeriesError as e:
            log.warning("series %s unreadable: %s", series["head"], e)
            state = "partial"
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


def load(store: Store, series_id: int) -> Series:
    """The series as b4 reads it from its thread's messages: patches, cover and replies (trailers)."""
    series = store.one("SELECT thread, version FROM series WHERE id = ?", series_id)
    raws = [r["raw"] for r in store.rows("SELECT raw FROM message WHERE thread = ? ORDER BY rowid", series["thread"])]
    return from_messages(list(map(parse_message, raws)), f"<{series['thread']}>", series["version"])
