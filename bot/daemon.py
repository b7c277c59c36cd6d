"""The list bot: a cycle fetches the archive, files new mail, checks queued series and delivers
replies through the outbox; `serve` runs cycles on a schedule, never two at once."""
from __future__ import annotations

import fcntl
import logging
import signal
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler

from bot import assembly, mail, pipeline, report
from bot.archive import Archive, ArchiveUnreachable
from bot.config import ConfigError
from bot.pipeline import ERROR, Settings
from bot.series import configure_b4, parse_message
from bot.store import Store, now

log = logging.getLogger("bootbot.daemon")


@dataclass
class Bot:
    store: Store
    archive: Archive
    policy: assembly.Policy
    settings: Settings
    smtp: mail.Smtp | None        # None: replies go to state/outbox/ as files
    outbox_dir: Path
    sender: str
    list_address: str
    extra_cc: list[str]
    reply_on: set[str]
    retry_seconds: list[float]    # waits after each failed delivery; the last repeats forever
    lock: Path


def make(config) -> Bot:
    state = config.path("state", "dir")
    store = Store(state / "bootbot.sqlite3")
    configure_b4(config.get("archive", "url"))
    sender = config.get("mail", "from")
    smtp_url = config.get("mail", "smtp")
    tree = config.get("tree", "path")
    if not tree:
        raise ConfigError("tree.path is not set: the bot needs a Linux tree")
    return Bot(
        store=store,
        archive=Archive(config.get("archive", "url"), state / "archive", store),
        policy=assembly.Policy(own_addresses=[sender], maintainers=config.get("commands", "maintainers"),
                               require_dkim=config.get("commands", "require_dkim"),
                               grace_seconds=config.get("poll", "grace_seconds"),
                               commands_per_thread=config.get("commands", "per_thread")),
        settings=pipeline.settings(config, config.path("tree", "path")),
        smtp=None if smtp_url == "outbox" else mail.Smtp(
            smtp_url, starttls=config.get("mail", "starttls"), username=config.get("mail", "username"),
            password=config.get("mail", "password")),
        outbox_dir=state / "outbox", sender=sender, list_address=config.get("archive", "list"),
        extra_cc=config.get("mail", "cc"), reply_on=set(config.get("mail", "reply_on")),
        retry_seconds=config.get("mail", "retry_seconds"), lock=state / "bootbot.lock")


def cycle(bot: Bot) -> None:
    """One full cycle, unless another bot process is in one (then nothing)."""
    with bot.lock.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another bot process is in a cycle; this one is skipped")
            return
        try:
            bot.archive.poll()
        except ArchiveUnreachable as e:
            log.warning("archive unreachable, cursor kept: %s", e)
        assembly.take_new_messages(bot.store, bot.policy)
        assembly.queue_complete_series(bot.store, bot.policy, lambda s: bool(pipeline.affected(s.files)))
        run_jobs(bot)
        deliver(bot)


def run_jobs(bot: Bot) -> None:
    # Only one process runs cycles (the lock), so a job still "running" was cut short by a
    # crash or a kill: it runs again, and its reply is recorded only when it completes.
    with bot.store.transaction() as db:
        db.execute("UPDATE job SET state = 'queued' WHERE state = 'running'")
    for job in bot.store.rows("SELECT * FROM job WHERE state = 'queued' ORDER BY id"):
        with bot.store.transaction() as db:
            db.execute("UPDATE job SET state = 'running', attempts = attempts + 1 WHERE id = ?", (job["id"],))
        log.info("job %d: checking series %d (attempt %d)", job["id"], job["series_id"], job["attempts"] + 1)
        series = assembly.load(bot.store, job["series_id"])
        outcome = pipeline.check(series, bot.settings, only=job["entries"].split() or None)
        reply = _reply(bot, job, outcome)
        with bot.store.transaction() as db:
            db.execute("UPDATE job SET state = 'done', verdict = ? WHERE id = ?", (outcome.verdict, job["id"]))
            db.execute("UPDATE series SET state = 'checked' WHERE id = ?", (job["series_id"],))
            if reply is not None:
                db.execute("INSERT INTO outbox (job_id, message_id, raw, state, next_try) VALUES (?, ?, ?, 'pending', ?)",
                           (job["id"], reply["Message-ID"], bytes(reply), now()))
        log.info("job %d: %s", job["id"], outcome.verdict)


def _reply(bot: Bot, job, outcome):
    """The reply a job's outcome calls for, or None: commands are always answered, new series
    by policy; a lab error is never mailed, since it says nothing about the author's work."""
    if outcome.verdict == ERROR or not (job["command_msgid"] or outcome.verdict in bot.reply_on):
        return None
    series = bot.store.one("SELECT head FROM series WHERE id = ?", job["series_id"])
    parent_id = job["command_msgid"] or (outcome.culprit.msgid if outcome.culprit else series["head"])
    parent = bot.store.one("SELECT raw FROM message WHERE msgid = ?", parent_id)
    if parent is None:
        log.warning("job %d: parent %s is not in the archive; no reply", job["id"], parent_id)
        return None
    body = report.text(outcome, f"bootbot check '{series['head']}' --tree ~/linux", bot.sender)
    try:
        return mail.reply(parse_message(parent["raw"]), body, bot.sender, bot.list_address, bot.extra_cc,
                          mail.make_message_id(f"job-{job['id']}", bot.sender))
    except ValueError as e:   # no usable From or Message-ID to answer: nobody to reply to
        log.warning("job %d: cannot reply to %s: %s", job["id"], parent_id, e)
        return None


def deliver(bot: Bot) -> None:
    """Sends every pending reply that is due; a failure waits longer each time, never drops it."""
    for row in bot.store.rows("SELECT * FROM outbox WHERE state = 'pending' AND next_try <= ? ORDER BY id", now()):
        try:
            _send(bot, row)
        except mail.DeliveryError as e:
            wait = bot.retry_seconds[min(row["attempts"], len(bot.retry_seconds) - 1)]
            with bot.store.transaction() as db:
                db.execute("UPDATE outbox SET attempts = attempts + 1, next_try = ?, last_error = ? WHERE id = ?",
                           (now() + wait, str(e), row["id"]))
            log.warning("reply %s not delivered (%s); next try in %d s", row["message_id"], e, wait)
            continue
        with bot.store.transaction() as db:
            db.execute("UPDATE outbox SET state = 'sent', attempts = attempts + 1 WHERE id = ?", (row["id"],))


def _send(bot: Bot, row) -> None:
    message = parse_message(row["raw"])
    if bot.smtp is None:
        bot.outbox_dir.mkdir(parents=True, exist_ok=True)
        name = row["message_id"].strip("<>").replace("/", "_")
        (bot.outbox_dir / f"{name}.eml").write_bytes(row["raw"])
    else:
        bot.smtp.send(message)


def serve(bot: Bot, interval: float) -> None:
    """Cycles every `interval` seconds, one at a time (a late cycle is merged, not stacked)."""
    scheduler = BlockingScheduler()
    scheduler.add_job(cycle, "interval", args=[bot], seconds=interval, max_instances=1, coalesce=True,
                      next_run_time=datetime.now())
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    scheduler.start()
