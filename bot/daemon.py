"""The list bot: a cycle polls the sources, files new mail and branch heads, checks queued changes
and delivers replies through the outbox; `serve` runs cycles on a schedule, never two at once."""
from __future__ import annotations

import fcntl
import logging
import shlex
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from apscheduler.schedulers.blocking import BlockingScheduler

from bot import queue, settings as settings_module, sources as sources_module
from bot.changes import assembly
from bot.changes.change import Change, to_json
from bot.changes.series import SeriesError, configure_b4, parse_message
from bot.config import ConfigError
from bot.mail import reply as mail
from bot import folders
from bot.reports import health, text, web
from bot.settings import Settings
from bot.sources import Source, Unreachable
from bot.sources.branch import Branch
from bot.sources.inbox import Inbox, thread_link
from bot.store import StateFull, Store, full, now
from bot.trees import upstream
from bot.verdicts import check
from bot.words import ERROR, NO_BASE, ON_GUESSED_BASE, LabError

if TYPE_CHECKING:
    from bot.queue.workers import Workers

log = logging.getLogger("bootbot.daemon")


@dataclass
class Bot:
    store: Store
    sources: list[Source]
    policy: assembly.Policy
    settings: Settings
    smtp: mail.Smtp | None        # None: replies go to state/outbox/ as files
    outbox_dir: Path
    sender: str
    extra_cc: list[str]
    reply_on: set[str]            # for a series whose source is no longer configured
    retry_seconds: list[float]    # waits after each failed delivery; the last repeats forever
    moderate: bool | str          # hold replies until approved; an address: and send it each for review
    mute: bool                    # send nothing; replies wait in the outbox
    max_per_day: int              # replies sent in any 24 hours, at most (0: no limit)
    lock: Path
    max_attempts: int             # a job whose check raises or kills the bot is given up after these
    alarm_limits: health.Limits | None = None   # when the operator is mailed ([health])
    operator: str = ""            # mail.operator: who is
    pages: str = ""               # web.url: where replies link each check's page
    listen: str = ""              # web.listen: `serve` serves the pages there too
    workers: Workers | None = None   # queue.broker: jobs are checked on workers, not here


def make(config) -> Bot:
    state = settings_module.state_folder(config)
    store = Store(state.database)
    configure_b4(config.get("archive", "url"))
    sender = config.get("mail", "from")
    settings = settings_module.load(config)
    if not any(settings.sites.values()):
        raise ConfigError(f"no tree is configured: the bot needs one ([trees.{next(iter(settings.sites))}] path)")
    listen = config.get("web", "listen")
    try:
        listen and web.address(listen)
    except ValueError as e:
        raise ConfigError(f"web.listen: {e}") from None
    sources = sources_module.load(config, settings, store)
    if not sources:
        raise ConfigError("no [[sources]]: the bot would follow nothing")
    for inbox in sources:   # a state from before [[sources]] followed [archive] url: that inbox reads on
        if isinstance(inbox, Inbox) and inbox.url == config.get("archive", "url").rstrip("/"):
            inbox.adopt(state.root / "archive")
    return Bot(
        store=store, sources=sources,
        policy=assembly.Policy(own_addresses=[sender], maintainers=config.get("commands", "maintainers"),
                               require_dkim=config.get("commands", "require_dkim"),
                               grace_seconds=config.get("poll", "grace_seconds"),
                               commands_per_thread=config.get("commands", "per_thread"),
                               read_seconds=config.get("limits", "read_seconds")),
        settings=settings,
        smtp=_smtp(config),
        outbox_dir=state.outbox, sender=sender,
        extra_cc=config.get("mail", "cc"), reply_on=set(config.get("mail", "reply_on")),
        retry_seconds=config.get("mail", "retry_seconds"), moderate=config.get("mail", "moderate"),
        mute=config.get("mail", "mute"), max_per_day=config.get("mail", "max_per_day"), lock=state.lock,
        max_attempts=config.get("poll", "max_attempts"), pages=config.get("web", "url"),
        operator=config.get("mail", "operator"),
        alarm_limits=health.Limits(**{k: config.get("health", k) for k in health.Limits.__dataclass_fields__}),
        listen=listen, workers=_workers(config))


def _workers(config):
    """The workers' side of the broker, when there is one (Celery is loaded only then)."""
    if not config.get("queue", "broker"):
        return None
    from bot.queue.workers import Workers
    return Workers(config)


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
        finally:   # the operator hears of a cycle that stopped short too (unless the disk is full)
            _alarm_safely(bot)


def _steps(bot: Bot) -> None:
    _fetch_trees(bot)
    sources_module.poll(bot.sources)
    assembly.take_new_messages(bot.store, bot.policy)
    assembly.queue_complete_series(bot.store, bot.policy,
                                   lambda s: bot.settings.checkable(s.files))
    queue_pushes(bot)
    run_jobs(bot)
    deliver(bot)


def _fetch_trees(bot: Bot) -> None:
    """Keeps every tree that follows upstreams current: the fetch of each upstream not fetched
    for fetch_seconds. A failed fetch is recorded (the alarms read it) and never stops the cycle."""
    for kind, site in bot.settings.sites.items():
        if site and site.following:
            upstream.keep_current(kind, site.path, site.following, bot.settings.state.trees)


def _alarm_safely(bot: Bot) -> None:
    try:
        alarm(bot)
    except Exception as e:   # no alarm must stop the bot, nor hide why the cycle stopped
        log.warning("alarms not checked: %s", " ".join(f"{type(e).__name__}: {e}".split()))


def alarm(bot: Bot) -> None:
    """Mails the operator each alarm condition once, when it arises; forgets it when it clears,
    so a condition that comes back is told again. Sent at once, not through the outbox (which
    may be what is stuck); a mail that fails is tried again next cycle."""
    if not bot.operator or bot.alarm_limits is None:
        return
    now_health = health.read(bot.settings.state)
    followed = {kind: str(site.path) for kind, site in bot.settings.sites.items() if site and site.following}
    now_health.trees = {kind: tree for kind, tree in now_health.trees.items() if followed.get(kind) == tree["path"]}
    raised = health.alarms(now_health, bot.alarm_limits)
    told = {r["key"].removeprefix("alarm:") for r in bot.store.rows("SELECT key FROM notice WHERE key LIKE 'alarm:%'")}
    with bot.store.transaction() as db:
        for key in told - set(raised):
            db.execute("DELETE FROM notice WHERE key = ?", (f"alarm:{key}",))
            log.info("alarm %s cleared", key)
    for key, said in raised.items():
        if key in told:
            continue
        message = mail.new(f"bootbot alarm: {said}"[:200], f"{said}\n\n" + "\n".join(health.lines(now_health)) + "\n",
                           bot.sender, [bot.operator], [],
            mail.make_message_id(f"alarm-{key}-{int(now())}", bot.sender))
        try:
            with bot.store.transaction() as db:
                db.execute("INSERT INTO notice (key, at) VALUES (?, ?)", (f"alarm:{key}", now()))
                _send(bot, message)
        except mail.DeliveryError as e:
            log.warning("alarm %s not delivered (%s); tried again next cycle", key, e)


def _source(bot: Bot, name: str | None) -> Source | None:
    return next((s for s in bot.sources if s.name == name), None)


def queue_pushes(bot: Bot) -> None:
    """Queues each new branch head whose commits touch a boot path of its tree; records the
    others as skipped. A push of a source no longer configured waits for it to come back."""
    for push in bot.store.rows("SELECT * FROM push WHERE state = 'waiting' ORDER BY id"):
        source = _source(bot, push["source"])
        if not isinstance(source, Branch):
            continue
        try:
            change = source.change(push["base"], push["head"])
            state = "queued" if bot.settings.checkable(change.files, source.tree_path) else "skipped"
        except Unreachable as e:   # git could not say now: it waits for the next cycle
            log.warning("push %s of %s waits: %s", push["head"][:12], source.name, e)
            continue
        except Exception as e:   # whatever one push does, the others go on
            if full(e):
                raise
            log.exception("push %s of %s could not be assessed; set aside", push["head"], source.name)
            state = "failed"
        with bot.store.transaction() as db:
            db.execute("UPDATE push SET state = ? WHERE id = ?", (state, push["id"]))
            if state == "queued":
                db.execute("INSERT INTO job (push_id, state, created) VALUES (?, 'queued', ?)", (push["id"], now()))


def _series_source(bot: Bot, job) -> tuple[str, str, Source | None]:
    """A series job's head Message-ID, the name of the source that brought it, and that source
    as configured (None: no longer configured, or a message stored before sources)."""
    row = bot.store.one("SELECT s.head, m.source FROM series s LEFT JOIN message m ON m.msgid = s.head "
                        "WHERE s.id = ?", job["series_id"])
    return row["head"], row["source"] or "", _source(bot, row["source"])


@dataclass(frozen=True)
class Work:
    """What a job's check is given, here or on a worker."""
    change: Change
    tree_path: Path | None   # None: the tree its files say
    source: str              # how the reproduce line names it
    origin: dict             # where it came from, for pages
    fetch: dict | None = None   # a branch's: where a worker fetches its commits (url, branch, head, tree)


def _work(bot: Bot, job) -> Work:
    if job["series_id"] is not None:
        head, name, source = _series_source(bot, job)
        archive = source.url if source else ""
        origin = {"source": name, "archive": archive, "link": thread_link(archive, head)}
        return Work(assembly.load(bot.store, job["series_id"], bot.policy.read_seconds), None, shlex.quote(head), origin)
    push = bot.store.one("SELECT * FROM push WHERE id = ?", job["push_id"])
    source = _source(bot, push["source"])
    if not isinstance(source, Branch):
        raise ConfigError(f"source {push['source']} is no longer a configured branch")
    return Work(source.change(push["base"], push["head"]), source.tree_path, "", {"source": source.name, "link": ""},
                {"url": source.url, "branch": source.branch, "head": push["head"], "tree": source.tree})


def _only(job) -> list[str] | None:
    return job["entries"].split() or None


def run_jobs(bot: Bot) -> None:
    _requeue_cut_short(bot)
    if bot.workers is not None:
        _run_on_workers(bot)
        return
    for job in bot.store.rows("SELECT * FROM job WHERE state = 'queued' ORDER BY id"):
        with bot.store.transaction() as db:
            db.execute("UPDATE job SET state = 'running', attempts = attempts + 1 WHERE id = ?", (job["id"],))
        attempt = job["attempts"] + 1
        log.info("job %d: checking %s (attempt %d)", job["id"], _what(job), attempt)
        try:
            work = _work(bot, job)
            folder = check.check(work.change, bot.settings, only=_only(job), tree_path=work.tree_path,
                                 source=work.source, origin=work.origin)
        except Exception as e:   # no verdict (a broken tree, an unreadable series): not the author's to hear
            _failed(bot, job, attempt, e)
            continue
        _record(bot, job, attempt, folder)


def _what(job) -> str:
    return f"series {job['series_id']}" if job["series_id"] is not None else f"push {job['push_id']}"


def _record(bot: Bot, job, attempt: int, folder: Path) -> None:
    """A check's result folder, from here or from a worker: the job done and its reply in the
    outbox (one transaction), or tried again after a lab error."""
    try:
        outcome = folders.read(folder)
        reply = _reply(bot, job, outcome, folder)
    except Exception as e:
        _failed(bot, job, attempt, e)
        return
    if outcome.verdict == ERROR and attempt < bot.max_attempts:   # the lab may be well again next cycle
        _failed(bot, job, attempt, LabError(f"{'; '.join(outcome.detail[:2])} (see {folder})"))
        return
    with bot.store.transaction() as db:
        db.execute("UPDATE job SET state = 'done', verdict = ?, result = ?, error = NULL WHERE id = ?",
                   (outcome.verdict, folder.name, job["id"]))
        db.execute("UPDATE series SET state = 'checked' WHERE id = ?", (job["series_id"],))
        db.execute("UPDATE push SET state = 'checked' WHERE id = ?", (job["push_id"],))
        if reply is not None:
            db.execute("INSERT INTO outbox (job_id, message_id, raw, state, next_try, made) VALUES (?, ?, ?, ?, ?, ?)",
                       (job["id"], reply["Message-ID"], bytes(reply), "held" if bot.moderate else "pending", now(),
                        now()))
    log.info("job %d: %s", job["id"], outcome.verdict)


def _run_on_workers(bot: Bot) -> None:
    """Answers first (a worker freed takes the next job), then the queued jobs sent. A broker
    away stops both: the jobs wait here, sent when it is back."""
    try:
        live = bot.workers.live()
        _take_answers(bot, live)
        _send_jobs(bot, live)
    except queue.BrokerAway as e:
        with bot.store.transaction() as db:
            db.execute("UPDATE job SET waiting = ? WHERE state = 'queued'", (f"the broker is unreachable: {e}",))
        log.warning("the broker is unreachable, jobs wait here until it is back: %s", e)


def _take_answers(bot: Bot, live: list[dict]) -> None:
    serving = {w["queue"] for w in live}
    for job in bot.store.rows("SELECT * FROM job WHERE state = 'sent' ORDER BY id"):
        try:
            answer = bot.workers.answer(job["task"])
            if answer.waiting:
                if job["queue"] not in serving:   # its workers went away before taking it
                    _failed(bot, job, job["attempts"], LabError(f"no worker of {job['queue']} is alive to take it"))
                continue
            log.info("job %d: answered by %s", job["id"], answer.worker)
            if answer.error:
                raise RuntimeError(answer.error)
            _record(bot, job, job["attempts"], folders.unpack(answer.folder, bot.settings.state.results))
        except queue.BrokerAway:
            raise
        except Exception as e:   # an answer that is no result folder: a failed attempt, like a check that raised
            _failed(bot, job, job["attempts"], e)
        bot.workers.forget(job["task"])


def _send_jobs(bot: Bot, live: list[dict]) -> None:
    for job in bot.store.rows("SELECT * FROM job WHERE state = 'queued' ORDER BY id"):
        attempt = job["attempts"] + 1
        try:
            work = _work(bot, job)
            needs = queue.needs(bot.settings, work.change, _only(job), work.tree_path, bot.workers.extra_needs)
        except Exception as e:
            _failed(bot, job, attempt, e)
            continue
        payload = {"job": job["id"], "change": to_json(work.change), "only": _only(job), "source": work.source,
                   "origin": work.origin, "fetch": work.fetch, "max_starts": bot.max_attempts}
        task = f"job-{job['id']}-{attempt}"
        # Recorded only once sent (the broker answers within its timeouts); a crash between the
        # two sends it again: checked twice, answered once.
        with bot.store.transaction() as db:
            sent_to = bot.workers.send(task, payload, needs, live)
            waits = "" if sent_to else queue.unserved(needs, live)
            if sent_to:
                db.execute("UPDATE job SET state = 'sent', attempts = ?, task = ?, queue = ?, sent = ?, waiting = NULL "
                           "WHERE id = ?", (attempt, task, sent_to, now(), job["id"]))
            else:
                db.execute("UPDATE job SET waiting = ? WHERE id = ?", (waits, job["id"]))
        if sent_to:
            log.info("job %d: %s sent to %s (attempt %d)", job["id"], _what(job), sent_to, attempt)
        else:
            log.info("job %d waits: %s", job["id"], waits)


def _requeue_cut_short(bot: Bot) -> None:
    # Only one process runs cycles (the lock), so a job still "running" was cut short by a
    # crash or a kill: it runs again, and its reply is recorded only when it completes; unless it
    # had its max_attempts, as a check that kills the bot every time would, holding up the queue.
    # Jobs sent to workers before queue.broker was taken away are checked here.
    with bot.store.transaction() as db:
        if bot.workers is None:
            db.execute("UPDATE job SET state = 'queued' WHERE state = 'sent'")
        given_up = db.execute("UPDATE job SET state = 'failed', error = 'attempt ' || attempts || ' cut short "
                              "(the bot was killed or crashed)' WHERE state = 'running' AND attempts >= ? "
                              "RETURNING id, error", (bot.max_attempts,)).fetchall()
        db.execute("UPDATE job SET state = 'queued' WHERE state = 'running'")
    for job in given_up:
        log.error("job %d: given up: %s", job["id"], job["error"])


def _failed(bot: Bot, job, attempt: int, error: Exception) -> None:
    """Records a check that raised instead of giving a verdict: queued again for the next cycle,
    or given up after max_attempts. One line in the log, never a mail. A full disk is not the
    job's fault: it stops the cycle, and the job runs again as if killed."""
    if full(error):
        raise error
    text = " ".join(f"{type(error).__name__}: {error}".split())   # one line, whatever the message
    state = "failed" if attempt >= bot.max_attempts else "queued"
    with bot.store.transaction() as db:
        db.execute("UPDATE job SET state = ?, attempts = ?, error = ? WHERE id = ?", (state, attempt, text, job["id"]))
    if state == "failed":
        log.error("job %d: given up after %d attempts: %s", job["id"], attempt, text)
    else:
        log.warning("job %d: attempt %d of %d failed, tried again next cycle: %s",
                    job["id"], attempt, bot.max_attempts, text)


def _reply(bot: Bot, job, outcome: folders.Outcome, folder: Path):
    """The reply a job's outcome calls for, or None: commands are always answered, changes by
    their source's policy; a lab error is never mailed, since it says nothing about the author's work."""
    if job["series_id"] is None:
        return _push_reply(bot, job, outcome, folder)
    head, _, source = _series_source(bot, job)
    reply_on = source.reply_on if source else bot.reply_on
    if outcome.verdict == ERROR or not (job["command_msgid"] or _wanted(outcome, reply_on)):
        return None
    parent_id = job["command_msgid"] or (outcome.culprit["msgid"] if outcome.culprit else head)
    parent = bot.store.one("SELECT raw FROM message WHERE msgid = ?", parent_id)
    if parent is None:
        log.warning("job %d: parent %s is not in the archive; no reply", job["id"], parent_id)
        return None
    parent = parse_message(parent["raw"])
    went_to = mail.recipients(parent)
    # posted to several lists the bot follows: each of them hears, whichever source brought it
    lists = [s.list_address for s in bot.sources if isinstance(s, Inbox) and s.list_address
             and s.list_address.lower() in " ".join(went_to).lower()]
    cc = [*(source.cc if source else []), *lists, *bot.extra_cc]
    if source and source.reply_all:   # mail found anywhere: answered where it went
        cc = [*went_to, *cc]
    body = text.text(outcome, folder, bot.sender, bot.pages)
    return _made(bot, job, lambda message_id: mail.reply(parent, body, bot.sender, cc, message_id), parent_id)


def _wanted(outcome: folders.Outcome, reply_on: set[str]) -> bool:
    """Whether a policy mails this outcome: it names its verdict, and, for a verdict reached on a
    guessed base (which blames no patch), checks on a guessed base too."""
    return outcome.verdict in reply_on and (outcome.known_base or outcome.verdict == NO_BASE
                                            or ON_GUESSED_BASE in reply_on)


def _push_reply(bot: Bot, job, outcome: folders.Outcome, folder: Path):
    """A branch's regression goes to the culprit's author and committer and the source's cc,
    threaded to the commit's posting on lore when its Link: names one."""
    push = bot.store.one("SELECT source FROM push WHERE id = ?", job["push_id"])
    source = _source(bot, push["source"])
    if outcome.verdict == ERROR or source is None or not _wanted(outcome, source.reply_on):
        return None
    culprit = outcome.culprit or {}
    to = list(dict.fromkeys(filter(None, (culprit.get("author"), culprit.get("committer")))))
    cc = [*source.cc, *bot.extra_cc]
    body = text.text(outcome, folder, bot.sender, bot.pages)
    parent = _posting(bot, culprit) if culprit.get("msgid") else None
    if parent is not None:
        return _made(bot, job, lambda message_id: mail.reply(parent, body, bot.sender, cc, message_id, to=to),
                     culprit["msgid"])
    return _made(bot, job, lambda message_id: mail.new(body.splitlines()[0], body, bot.sender, to or cc, cc,
                                                       message_id), source.name)


def _posting(bot: Bot, culprit: dict):
    """A commit's posting: from the store when a source brought it, else from its Link:."""
    stored = bot.store.one("SELECT raw FROM message WHERE msgid = ?", culprit["msgid"])
    if stored is not None:
        return parse_message(stored["raw"])
    try:
        answer = requests.get(f"{culprit['link'].rstrip('/')}/raw", timeout=30)
        answer.raise_for_status()
        return parse_message(answer.content)
    except (requests.RequestException, SeriesError) as e:
        log.warning("the posting of %s (%s) could not be read, so the mail starts a thread: %s",
                    culprit["commit"][:12], culprit["link"], e)
        return None


def _made(bot: Bot, job, make, about: str):
    try:
        return make(mail.make_message_id(f"job-{job['id']}", bot.sender))
    except ValueError as e:   # no usable From or Message-ID to answer: nobody to reply to
        log.warning("job %d: cannot mail about %s: %s", job["id"], about, e)
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
    if bot.listen:   # the pages beside the bot: a thread of their own, read-only
        try:
            bound = web.server(bot.settings.state, bot.listen, bot.sender)
        except OSError as e:
            raise ConfigError(f"web.listen {bot.listen}: cannot serve there: {e.strerror or e}") from None
        threading.Thread(target=bound.serve_forever, daemon=True).start()
        log.info("results pages at %s", web.url(bound))
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
