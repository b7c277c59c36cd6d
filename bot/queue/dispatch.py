"""The bot's side of the queue: which workers are alive and what they offer (their records),
sending a job to a queue whose workers can run it, and taking its answer back."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import kombu.exceptions
import redis
from celery.result import AsyncResult

from bot import queue
from bot.config import Config
from bot.queue.assignment import Assignment
from bot.state.jobs import Failure

_AWAY = (redis.RedisError, kombu.exceptions.OperationalError, OSError)


@dataclass(frozen=True)
class Answer:
    waiting: bool         # not answered yet: the job waits in its queue, or runs
    worker: str = ""
    folder: bytes = b""   # the packed result folder
    error: str = ""       # the check raised on the worker: no verdict
    failure: Failure = Failure.BUG   # how, then


class Dispatch:
    def __init__(self, config: Config):
        self.app = queue.app(config, worker=False)
        self.redis = queue.client(config)
        self.extra_needs = config.get("queue", "needs")   # of every job (e.g. "accel:kvm")

    def live(self) -> list[dict]:
        """The records of the workers alive now (a worker's lapses three heartbeats after it stops)."""
        try:
            keys = sorted(self.redis.scan_iter(f"{queue.RECORD}*"))
            records = self.redis.mget(keys) if keys else []
        except _AWAY as e:
            raise queue.BrokerAway(str(e)) from e
        return [json.loads(r) for r in records if r]

    def send(self, task: str, assignment: Assignment, needs: list[str], live: list[dict]) -> str:
        """Sends the job to the queue of workers offering all it needs, an idle one's first, and
        names the queue; "" when no worker alive offers them (it is not sent). The worker chosen
        counts as busy in `live` from then on, so the next job goes to another idle one."""
        able = [w for w in live if set(needs) <= set(w["offers"])]
        if not able:
            return ""
        chosen = min(able, key=lambda w: w["job"] is not None)
        try:
            self.app.send_task(queue.TASK, args=[assignment.to_json()], task_id=task, queue=chosen["queue"],
                               retry=False)
        except _AWAY as e:
            raise queue.BrokerAway(str(e)) from e
        chosen["job"] = chosen["job"] or {"id": assignment.job}
        return chosen["queue"]

    def answer(self, task: str) -> Answer:
        """The answer to a job sent as `task`, if any yet."""
        sent = AsyncResult(task, app=self.app)
        try:
            state, value = sent.state, sent.result
        except _AWAY as e:
            raise queue.BrokerAway(str(e)) from e
        if state == "SUCCESS":
            return Answer(False, value["worker"], base64.b64decode(value["folder"]))
        if state == "FAILURE":   # the worker's exception: "KIND on NAME: ..." (worker.Failed)
            kind, _, said = str(value).partition(" ")
            return Answer(False, "a worker", error=said, failure=Failure(kind) if kind in set(Failure) else Failure.BUG)
        return Answer(True)

    def forget(self, task: str) -> None:
        try:
            AsyncResult(task, app=self.app).forget()
            self.redis.delete(queue.STARTS + task)
        except _AWAY:   # it expires on its own (queue.RESULT_DAYS)
            pass

