"""`bootbot worker`: a Celery worker that checks what the bot sends, one job at a time, with
its own configuration: its trees, caches, workspaces and lab. It answers with the result folder
and never touches the bot's database. Its record in Redis (refreshed every heartbeat, gone
three heartbeats after it stops) says what it offers, what it is checking and since when."""
from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis
from celery import signals

from bot import folders, queue
from bot import settings as settings_module
from bot.config import Config
from bot.queue.assignment import Assignment, Fetch, failure_of
from bot.sources import Unreachable
from bot.state.jobs import Failure
from bot.verdicts import check

log = logging.getLogger("bootbot.worker")


class Worker:
    def __init__(self, config: Config, name: str):
        self.name = name
        self.settings = settings_module.load(config)
        self.offers = queue.offers(self.settings, config)
        self.queue = queue.queue_of(self.offers)
        self.app = queue.app(config, worker=True)
        self.app.task(name=queue.TASK)(self.check)
        self.redis = queue.client(config)
        self.beat_seconds = config.get("queue", "heartbeat_seconds")
        self.started, self.checked = time.time(), 0
        self.job: dict | None = None   # the job in hand: its id, since when
        self.stopped = threading.Event()

    def check(self, payload: dict) -> dict:
        """One job: the change checked here, its result folder sent back whole."""
        assignment = Assignment.from_json(payload)
        self.job = {"id": assignment.job, "since": time.time()}
        self.beat()
        try:
            self.count_start(assignment.max_starts)
            tree_path = None
            if assignment.fetch:   # a branch's commits, into this machine's tree of their kind
                tree_path = self.settings.site(assignment.fetch.kind).path
                _fetch(tree_path, assignment.fetch)
            folder = check.check(assignment.change, self.settings, only=assignment.only, tree_path=tree_path,
                                 named=assignment.named, origin=assignment.origin)
            log.info("job %d: checked, %s", assignment.job, folders.read(folder).verdict)
            return {"worker": self.name, "folder": base64.b64encode(folders.pack(folder)).decode()}
        except GivenUp as e:
            raise Failed(f"{Failure.CUT_SHORT} on {self.name}: {e}") from e
        except Exception as e:   # the bot hears which worker failed, and how
            failure, said = failure_of(e)
            if failure == Failure.BUG:
                log.error("job %d: %s", assignment.job, said)
            raise Failed(f"{failure} on {self.name}: {said}") from e
        finally:
            self.job, self.checked = None, self.checked + 1
            self.beat()

    def count_start(self, most: int) -> None:
        """A check that kills its worker each time would go round the workers for ever: after the
        bot's max_attempts starts it fails instead, and the bot counts that as one failed attempt."""
        started = queue.STARTS + self.app.current_task.request.id
        starts = self.redis.incr(started)
        self.redis.expire(started, queue.RESULT_DAYS * 86400)
        if starts > most:
            raise GivenUp(f"it was started {starts - 1} times by workers that died in it")

    def beat(self) -> None:
        record = {"name": self.name, "host": socket.gethostname(), "queue": self.queue, "offers": self.offers,
                  "job": self.job, "started": self.started, "checked": self.checked, "beat": time.time()}
        try:
            self.redis.set(queue.RECORD + self.name, json.dumps(record), ex=int(3 * self.beat_seconds) + 1)
        except redis.RedisError as e:   # the broker is away: the next beat tells again
            log.warning("heartbeat not recorded: %s", e)

    def beating(self) -> None:
        while not self.stopped.wait(self.beat_seconds):
            self.beat()

    def run(self) -> None:
        """Serves until stopped (SIGTERM: after the job in hand; its record goes with it)."""
        def ready(**_):
            self.beat()
            threading.Thread(target=self.beating, daemon=True).start()
            log.info("worker %s ready on queue %s, offering %s", self.name, self.queue, " ".join(self.offers))

        def shutdown(**_):
            self.stopped.set()
            try:
                self.redis.delete(queue.RECORD + self.name)
            except redis.RedisError:
                pass

        # Celery's line per task would carry the whole packed folder: the bot's own lines say enough
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        signals.worker_ready.connect(ready, weak=False)
        signals.worker_shutdown.connect(shutdown, weak=False)
        # solo: the check runs in this process, so a kill takes the job with it and the broker
        # gives it to another worker; the check makes its own parallel work (make -j, boots)
        self.app.worker_main(["worker", "--pool=solo", "--queues", self.queue,
                              "--hostname", f"{self.name}@{socket.gethostname()}", "--without-gossip",
                              "--without-mingle", "--loglevel=INFO"])


class GivenUp(Exception):
    pass


class Failed(Exception):
    pass


def _fetch(tree: Path, fetch: Fetch) -> None:
    """A branch's commits into this machine's tree of its kind, as the bot's source fetched them."""
    done = subprocess.run(["git", "-C", str(tree), "fetch", "--quiet", "--no-tags", fetch.url,
                           f"+refs/heads/{fetch.branch}:refs/bootbot/queue/fetched"],
                          capture_output=True, text=True, timeout=1800)
    missing = subprocess.run(["git", "-C", str(tree), "cat-file", "-e", f"{fetch.head}^{{commit}}"],
                             capture_output=True).returncode
    if done.returncode or missing:
        raise Unreachable(f"{fetch.head[:12]} of {fetch.url} {fetch.branch} could not be fetched: "
                          f"{' '.join(done.stderr.split()) or 'no longer on the branch'}")
