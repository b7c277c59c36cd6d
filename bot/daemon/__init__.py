"""The list bot. A cycle fetches the trees that follow upstreams, polls the sources, files new
mail and branch heads, checks the queued changes and delivers the replies; `serve` runs cycles
on a schedule, never two at once. Its parts:

    __init__.py   the bot as the configuration makes it; the cycle; serve
    jobs.py       the job life cycle: checked here or on workers, recorded, tried again
    replies.py    the reply a check calls for, and to whom
    delivery.py   the outbox sent, held for the moderator, within the day's limit
    alarms.py     the operator told of what is wrong, once per condition
"""
from __future__ import annotations

import fcntl
import logging
import signal
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.blocking import BlockingScheduler

from bot import settings as settings_module
from bot import sources as sources_module
from bot.changes import assembly
from bot.changes.series import configure_b4
from bot.config import ConfigError
from bot.daemon import alarms, delivery, jobs
from bot.daemon.alarms import Alarming
from bot.daemon.delivery import Mailing
from bot.daemon.replies import Replying
from bot.reports import health, web
from bot.settings import Settings
from bot.sources import Source
from bot.sources.inbox import Inbox
from bot.state import State, StateFull, full
from bot.trees import upstream

if TYPE_CHECKING:
    from bot.queue.dispatch import Dispatch

log = logging.getLogger("bootbot.daemon")


@dataclass
class Bot:
    state: State
    settings: Settings
    sources: list[Source]
    policy: assembly.Policy           # how mail is filed into series and commands
    replying: Replying
    mailing: Mailing
    alarming: Alarming
    max_attempts: int                 # a job whose check gives no verdict is given up after these
    listen: str = ""                  # web.listen: `serve` serves the pages there too
    dispatch: Dispatch | None = None  # queue.broker: jobs are checked on workers, not here


def make(config) -> Bot:
    configure_b4(config.get("archive", "url"))
    settings = settings_module.load(config)
    if not any(settings.sites.values()):
        raise ConfigError(f"no tree is configured: the bot needs one ([trees.{next(iter(settings.sites))}] path)")
    listen = config.get("web", "listen")
    try:
        listen and web.address(listen)
    except ValueError as e:
        raise ConfigError(f"web.listen: {e}") from None
    state = State(settings.state.database)
    sources = sources_module.load(config, settings, state)
    if not sources:
        raise ConfigError("no [[sources]]: the bot would follow nothing")
    for inbox in sources:   # a state from before [[sources]] followed [archive] url: that inbox reads on
        if isinstance(inbox, Inbox) and inbox.url == config.get("archive", "url").rstrip("/"):
            inbox.adopt(settings.state.root / "archive")
    sender = config.get("mail", "from")
    return Bot(
        state=state, settings=settings, sources=sources,
        policy=assembly.Policy(own_addresses=[sender], maintainers=config.get("commands", "maintainers"),
                               require_dkim=config.get("commands", "require_dkim"),
                               grace_seconds=config.get("poll", "grace_seconds"),
                               commands_per_thread=config.get("commands", "per_thread"),
                               read_seconds=config.get("limits", "read_seconds")),
        replying=Replying(sender, config.get("mail", "cc"), set(config.get("mail", "reply_on")),
                          config.get("web", "url")),
        mailing=delivery.mailing(config, settings.state.outbox),
        alarming=Alarming(config.get("mail", "operator"),
                          health.Limits(**{k: config.get("health", k) for k in health.Limits.__dataclass_fields__})),
        max_attempts=config.get("poll", "max_attempts"), listen=listen, dispatch=_dispatch(config))


def _dispatch(config):
    """The bot's side of the broker, when there is one (Celery is loaded only then)."""
    if not config.get("queue", "broker"):
        return None
    from bot.queue.dispatch import Dispatch
    return Dispatch(config)


def cycle(bot: Bot) -> None:
    """One full cycle, unless another bot process is in one (then nothing). A full disk under
    state/ stops it with StateFull; the step it hit was rolled back, so the next cycle carries on."""
    with bot.settings.state.lock.open("w") as lock:
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
            alarms.check_safely(bot.state, bot.settings, bot.alarming, bot.mailing)


def _steps(bot: Bot) -> None:
    _fetch_trees(bot)
    sources_module.poll(bot.sources)
    assembly.take_new_messages(bot.state, bot.policy)
    assembly.queue_complete_series(bot.state, bot.policy, lambda s: bot.settings.checkable(s.files))
    jobs.queue_pushes(bot)
    jobs.run(bot)
    delivery.deliver(bot.state, bot.mailing)


def _fetch_trees(bot: Bot) -> None:
    """Keeps every tree that follows upstreams current: the fetch of each upstream not fetched
    for fetch_seconds. A failed fetch is recorded (the alarms read it) and never stops the cycle."""
    for kind, site in bot.settings.sites.items():
        if site and site.following:
            upstream.keep_current(kind, site.path, site.following, bot.settings.state.trees)


def serve(bot: Bot, interval: float) -> None:
    """Cycles every `interval` seconds, one at a time (a late cycle is merged, not stacked)."""
    if bot.listen:   # the pages beside the bot: a thread of their own, read-only
        try:
            bound = web.server(bot.settings.state, bot.listen, bot.replying.sender)
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
