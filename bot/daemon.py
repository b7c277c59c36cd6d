"""The list bot: a cycle fetches the archive, files new mail, checks queued series and delivers
replies through the outbox; `serve` runs cycles on a schedule, never two at once."""
from __future__ import annotations

import fcntl
import logging
import shlex
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler

from bot import settings as settings_module
from bot.changes import assembly
from bot.changes.series import configure_b4, parse_message
from bot.config import ConfigError
from bot.mail import reply as mail
from bot.reports import result, text
from bot.settings import Settings
from bot.sources.archive import Archive, ArchiveUnreachable
from bot.store import StateFull, Store, full, now
from bot.verdicts import check
from bot.verdicts.words import ERROR, LabError

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
    moderate: bool | str          # hold replies until approved; an address: and send it each for review
    mute: bool                    # send nothing; replies wait in the outbox
    max_per_day: int              # replies sent in any 24 hours, at most (0: no limit)
    lock: Path
    max_attempts: int             # a job whose check raises or kills the bot is given up after these


def make(config) -> Bot:
    state = config.path("state", "dir")
    store = Store(state / "bootbot.sqlite3")
    configure_b4(config.get("archive", "url"))
    sender = config.get("mail", "from")
    settings = settings_module.load(config)
    if not any(settings.sites.values()):
        raise ConfigError(f"no tree is configured: the bot needs one ([trees.{next(iter(settings.sites))}] path)")
    return Bot(
        store=store,
        archive=Archive(config.get("archive", "url"), state / "archive", store,
                        max_message_bytes=config.get("limits", "max_message_bytes")),
        policy=assembly.Policy(own_addresses=[sender], maintainers=config.get("commands", "maintainers"),
                               require_dkim=config.get("commands", "require_dkim"),
                               grace_seconds=config.get("poll", "grace_seconds"),
                               commands_per_thread=config.get("commands", "per_thread"),
                               read_seconds=config.get("limits", "read_seconds")),
        settings=settings,
        smtp=_smtp(config),
        outbox_dir=state / "outbox", sender=sender, list_address=config.get("archive", "list"),
        extra_cc=config.get("mail", "cc"), reply_on=set(config.get("mail", "reply_on")),
        retry_seconds=config.get("mail", "retry_seconds"), moderate=config.get("mail", "moderate"),
        mute=config.get("mail", "mute"), max_per_day=config.get("mail", "max_per_day"), lock=state / "bootbot.lock",
        max_attempts=config.get("poll", "max_attempts"))


def _smtp(config) -> mail.Smtp | None:
    url = config.get("mail", "smtp")
    try:
        return None if url == "outbox" else mail.Smtp(url, starttls=config.get("mail", "starttls"),
                                                      username=config.get("mail", "username"),
                                                      password=config.get("mail", "password"))
    except ValueError as e:
        raise ConfigError(f"mail.smtp: {e}") from None


def cycle(bot: Bot) -> None:
    """One full cycle, unless another bot process is in one (then nothing). A full disk under
    state/ stops it with StateFull; the step it hit was rolled back, so the next cycle carries on."""
    with bot.lock.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another bot process is in a cycle; this one is skipped")
            return
        try:
            _steps(bot)
        except Exception as e:
            if full(e):
                raise StateFull(f"state/ is full: {e}") from e
            raise


def _steps(bot: Bot) -> None:
    try:
        bot.archive.poll()
    except ArchiveUnreachable as e:
        log.warning("archive unreachable, cursor kept: %s", e)
    assembly.take_new_messages(bot.store, bot.policy)
    assembly.queue_complete_series(bot.store, bot.policy,
                                   lambda s: bot.settings.checkable(s.files))
    run_jobs(bot)
    deliver(bot)


def run_jobs(bot: Bot) -> None:
    _requeue_cut_short(bot)
    for job in bot.store.rows("SELECT * FROM job WHERE state = 'queued' ORDER BY id"):
        with bot.store.transaction() as db:
            db.execute("UPDATE job SET state = 'running', attempts = attempts + 1 WHERE id = ?", (job["id"],))
        attempt = job["attempts"] + 1
        log.info("job %d: checking series %d (attempt %d)", job["id"], job["series_id"], attempt)
        try:
            series = assembly.load(bot.store, job["series_id"], bot.policy.read_seconds)
            head = bot.store.one("SELECT head FROM series WHERE id = ?", job["series_id"])["head"]
            folder = check.check(series, bot.settings, only=job["entries"].split() or None, source=shlex.quote(head))
            outcome = result.read(folder)
            reply = _reply(bot, job, outcome, folder)
        except Exception as e:   # no verdict (a broken tree, an unreadable series): not the author's to hear
            if full(e):   # nor the job's fault: the cycle stops, and the job runs again as if killed
                raise
            _failed(bot, job, attempt, e)
            continue
        if outcome.verdict == ERROR and attempt < bot.max_attempts:   # the lab may be well again next cycle
            _failed(bot, job, attempt, LabError(f"{'; '.join(outcome.detail[:2])} (see {folder})"))
            continue
        with bot.store.transaction() as db:
            db.execute("UPDATE job SET state = 'done', verdict = ?, result = ?, error = NULL WHERE id = ?",
                       (outcome.verdict, folder.name, job["id"]))
            db.execute("UPDATE series SET state = 'checked' WHERE id = ?", (job["series_id"],))
            if reply is not None:
                db.execute("INSERT INTO outbox (job_id, message_id, raw, state, next_try) VALUES (?, ?, ?, ?, ?)",
                           (job["id"], reply["Message-ID"], bytes(reply), "held" if bot.moderate else "pending", now()))
        log.info("job %d: %s", job["id"], outcome.verdict)


def _requeue_cut_short(bot: Bot) -> None:
    # Only one process runs cycles (the lock), so a job still "running" was cut short by a
    # crash or a kill: it runs again, and its reply is recorded only when it completes; unless it
    # had its max_attempts, as a check that kills the bot every time would, holding up the queue.
    with bot.store.transaction() as db:
        given_up = db.execute("UPDATE job SET state = 'failed', error = 'attempt ' || attempts || ' cut short "
                              "(the bot was killed or crashed)' WHERE state = 'running' AND attempts >= ? "
                              "RETURNING id, error", (bot.max_attempts,)).fetchall()
        db.execute("UPDATE job SET state = 'queued' WHERE state = 'running'")
    for job in given_up:
        log.error("job %d: given up: %s", job["id"], job["error"])


def _failed(bot: Bot, job, attempt: int, error: Exception) -> None:
    """Records a check that raised instead of giving a verdict: queued again for the next cycle,
    or given up after max_attempts. One line in the log, never a mail."""
    text = " ".join(f"{type(error).__name__}: {error}".split())   # one line, whatever the message
    state = "failed" if attempt >= bot.max_attempts else "queued"
    with bot.store.transaction() as db:
        db.execute("UPDATE job SET state = ?, error = ? WHERE id = ?", (state, text, job["id"]))
    if state == "failed":
        log.error("job %d: given up after %d attempts: %s", job["id"], attempt, text)
    else:
        log.warning("job %d: attempt %d of %d failed, tried again next cycle: %s",
                    job["id"], attempt, bot.max_attempts, text)


def _reply(bot: Bot, job, outcome: result.Outcome, folder: Path):
    """The reply a job's outcome calls for, or None: commands are always answered, new series
    by policy; a lab error is never mailed, since it says nothing about the author's work."""
    if outcome.verdict == ERROR or not (job["command_msgid"] or outcome.verdict in bot.reply_on):
        return None
    series = bot.store.one("SELECT head FROM series WHERE id = ?", job["series_id"])
    parent_id = job["command_msgid"] or (outcome.culprit["msgid"] if outcome.culprit else series["head"])
    parent = bot.store.one("SELECT raw FROM message WHERE msgid = ?", parent_id)
    if parent is None:
        log.warning("job %d: parent %s is not in the archive; no reply", job["id"], parent_id)
        return None
    body = text.text(outcome, folder, bot.sender)
    try:
        return mail.reply(parse_message(parent["raw"]), body, bot.sender, bot.list_address, bot.extra_cc,
                          mail.make_message_id(f"job-{job['id']}", bot.sender))
    except ValueError as e:   # no usable From or Message-ID to answer: nobody to reply to
        log.warning("job %d: cannot reply to %s: %s", job["id"], parent_id, e)
        return None


def deliver(bot: Bot) -> None:
    """Sends every pending reply that is due, within the day's limit; a failure waits longer each
    time, never drops it. Held replies go to the moderator for review, once each."""
    if bot.mute:
        log.info("mail.mute: %d replies wait in the outbox", len(bot.store.rows(
            "SELECT id FROM outbox WHERE state IN ('pending', 'held')")))
        return
    if isinstance(bot.moderate, str) and bot.moderate:
        for row in bot.store.rows("SELECT * FROM outbox WHERE state = 'held' AND reviewed = 0 ORDER BY id"):
            _once(bot, row, "reviewed = 1", mail.review_copy(parse_message(row["raw"]), row["id"], bot.moderate))
    budget = _left_today(bot)
    for row in bot.store.rows("SELECT * FROM outbox WHERE state = 'pending' AND next_try <= ? ORDER BY id", now()):
        if budget is not None and budget <= 0:
            _tell_once(bot, f"max_per_day {time.strftime('%Y-%m-%d')}", f"mail.max_per_day ({bot.max_per_day}) "
                       "reached: the other replies wait in the outbox")
            return
        if _once(bot, row, "state = 'sent', sent_at = :now", parse_message(row["raw"])) and budget is not None:
            budget -= 1


def _once(bot: Bot, row, mark: str, message) -> bool:
    """Sends `message` for outbox `row`, marking it (`mark`, an SQL assignment) in the transaction
    that sends it; nothing when the row's state is no longer the one read (the operator approved
    or dropped it meanwhile). A full state/ must stop the cycle before a mail goes out, not after
    (unmarked, it would go out again): the attempt is written first, needing room on the disk,
    and the mark is committed once the mail is out. Only a disk filling up between the two
    writes can still send one twice. A failure waits longer each time."""
    wait = bot.retry_seconds[min(row["attempts"], len(bot.retry_seconds) - 1)]
    same = {"id": row["id"], "state": row["state"], "now": now(), "next": now() + wait}
    with bot.store.transaction() as db:
        if not db.execute("UPDATE outbox SET attempts = attempts + 1, next_try = :next WHERE id = :id "
                          "AND state = :state", same).rowcount:
            return False
    try:
        with bot.store.transaction() as db:
            if not db.execute(f"UPDATE outbox SET {mark} WHERE id = :id AND state = :state", same).rowcount:
                return False
            _send(bot, message)
    except mail.DeliveryError as e:
        with bot.store.transaction() as db:
            db.execute("UPDATE outbox SET last_error = ? WHERE id = ?", (str(e), row["id"]))
        log.warning("reply %s not delivered (%s); next try in %d s", row["message_id"], e, wait)
        return False
    return True


def _left_today(bot: Bot) -> int | None:
    if not bot.max_per_day:
        return None
    sent = bot.store.one("SELECT COUNT(*) FROM outbox WHERE sent_at > ?", now() - 86400)[0]
    return bot.max_per_day - sent


def _tell_once(bot: Bot, key: str, message: str) -> None:
    with bot.store.transaction() as db:
        told = db.execute("INSERT OR IGNORE INTO notice (key, at) VALUES (?, ?)", (key, now())).rowcount
    if told:
        log.warning("%s", message)


def _send(bot: Bot, message) -> None:
    if bot.smtp is None:
        bot.outbox_dir.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("/", "_")
        (bot.outbox_dir / f"{name}.eml").write_bytes(message.as_bytes(policy=mail.POLICY))
    else:
        bot.smtp.send(message)


def serve(bot: Bot, interval: float) -> None:
    """Cycles every `interval` seconds, one at a time (a late cycle is merged, not stacked)."""
    scheduler = BlockingScheduler()
    scheduler.add_job(_scheduled_cycle, "interval", args=[bot], seconds=interval, max_instances=1,
                      coalesce=True, next_run_time=datetime.now())
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    scheduler.start()


def _scheduled_cycle(bot: Bot) -> None:
    try:
        cycle(bot)
    except StateFull as e:   # one line, not the scheduler's traceback; the next cycle tries again
        log.error("%s; the next cycle carries on", e)
