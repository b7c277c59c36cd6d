"""Checks on other machines. With `[queue] broker` set, the bot sends each job (an Assignment,
bot/queue/assignment.py) through Redis to Celery workers (`bootbot worker`, bot/queue/worker.py)
and stores the result folder each sends back (bot/queue/dispatch.py); without it, the bot checks
in-process.

What a job needs and what a worker offers are words of one vocabulary: "tree:linux",
"entry:linux/pvh", "accel:kvm". Workers offering the same words share one queue (named by them), so
a job killed with its worker is taken by another of the same kind; a job goes only to a queue whose
words cover its needs."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bot.boots.accel import KVM_DEVICE
from bot.changes.change import Change
from bot.config import Config, ConfigError
from bot.settings import Settings

if TYPE_CHECKING:   # imported where used: a bot without a broker never loads Celery or Redis
    import redis
    from celery import Celery

TASK = "bootbot.check"
RECORD = "bootbot:worker:"   # + a worker's name: its record in Redis, kept by its heartbeat
STARTS = "bootbot:starts:"   # + a task's id: how often workers started it
RESULT_DAYS = 14             # a result the daemon has not taken by then (down that long) is lost


class BrokerAway(Exception):
    """The broker cannot be reached: jobs wait in the daemon's database until it is back."""


def broker(config: Config) -> str:
    url = config.get("queue", "broker")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"queue.broker {url!r}: a Redis URL is needed (redis://HOST:PORT/DB)")
    return url


def client(config: Config) -> redis.Redis:
    """The broker as a Redis, for the workers' records: every call bounded."""
    import redis
    try:
        return redis.Redis.from_url(broker(config), socket_timeout=10, socket_connect_timeout=5)
    except ValueError as e:
        raise ConfigError(f"queue.broker: {e}") from None


def app(config: Config, worker: bool) -> Celery:
    from celery import Celery
    made = Celery("bootbot", broker=broker(config), backend=broker(config))
    made.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        # acknowledged once its result is stored: a worker killed mid-check leaves the job to another
        task_acks_late=True, worker_prefetch_multiplier=1,
        # a job taken and not acknowledged within this goes to another worker: longer than any check;
        # workers look for such jobs every 10 s (kombu's default: every 100 s)
        broker_transport_options={"visibility_timeout": config.get("queue", "visibility_seconds"),
                                  "unacked_restore_interval": 10, "unacked_restore_throttle": 1,
                                  "socket_timeout": 10, "socket_connect_timeout": 5},
        result_expires=RESULT_DAYS * 86400, task_track_started=True,
        broker_connection_timeout=5, redis_socket_connect_timeout=5, redis_socket_timeout=30,
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        # the daemon asks again next cycle; a worker waits out a broker away however long, and
        # holds its result until the broker is back
        task_publish_retry=False, result_backend_always_retry=worker,
        broker_connection_max_retries=None if worker else 0, result_backend_max_sleep_between_retries_ms=5000)
    if not worker:   # it asks for answers each cycle, never waits on one: nothing to subscribe to
        made.backend.on_task_call = lambda producer, task_id: None
    return made


def queue_of(offers: list[str]) -> str:
    """The queue of every worker offering exactly these."""
    return "bootbot." + hashlib.sha256(json.dumps(sorted(offers)).encode()).hexdigest()[:12]


def offers(settings: Settings, config: Config) -> list[str]:
    """What this machine can run: its configured trees, their entries (narrowed by
    `worker.entries`: "tree/entry" names), its accelerators."""
    declared = {f"{tree}/{entry}" for tree, site in settings.sites.items() if site
                for entry in settings.declarations.trees[tree].entries}
    chosen = config.get("worker", "entries") or sorted(declared)
    unknown = [name for name in chosen if name not in declared]
    if unknown:
        raise ConfigError(f"worker.entries: no configured tree has {', '.join(unknown)} "
                          f"(they are {', '.join(sorted(declared)) or 'none: no tree is configured'})")
    accel = settings.lab.accel
    kvm = accel == "kvm" or (accel == "auto" and os.access(KVM_DEVICE, os.R_OK | os.W_OK))
    return sorted({f"tree:{name.split('/')[0]}" for name in chosen} | {f"entry:{name}" for name in chosen}
                  | {"accel:tcg"} | ({"accel:kvm"} if kvm else set()))


def unserved(needs: list[str], live: list[dict]) -> str:
    """Why no worker alive (their records) can take a job that needs `needs`."""
    if not live:
        return "no worker is alive"
    lacking = [need for need in needs if not any(need in w["offers"] for w in live)]
    return (f"no worker offers {', '.join(lacking)}" if lacking
            else f"no one worker offers all of {', '.join(needs)}")


def needs(settings: Settings, change: Change, only: list[str] | None, tree_path: Path | None,
          extra: list[str]) -> list[str]:
    """What a worker must offer to check `change`: its tree and the entries it calls for."""
    selection = settings.select(change.files, only, tree_path)
    if selection.tree is None:   # nothing to build or boot: any worker says so
        return sorted(extra)
    tree = selection.tree.name
    return sorted({f"tree:{tree}", *(f"entry:{tree}/{e.name}" for e in selection.entries), *extra})
