"""The bot's health for its operator, read from its database (read-only) and the checks' history:
the same facts as Prometheus metrics (/metrics), as lines for a person (`bootbot status`), and as
the conditions the bot mails an alarm about (each once, until it clears)."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from bot.folders import StateFolder
from bot.state import State
from bot.state.history import History
from bot.state.jobs import UNFINISHED, Job, JobState
from bot.state.sources import Poll
from bot.trees import upstream


@dataclass
class Health:
    polls: dict[str, Poll] = field(default_factory=dict)      # by source
    messages: int = 0
    series: dict[str, int] = field(default_factory=dict)      # by state
    pushes: dict[str, int] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)      # every check's result folder, by verdict
    lab_errors_in_a_row: int = 0                               # the bot's newest ended jobs, ended by the lab
    outbox: int = 0                                            # replies not sent yet (pending or held)
    outbox_oldest: float | None = None                         # when the oldest pending one was made
    boots: dict[tuple[str, str, str], int] = field(default_factory=dict)        # (tree, entry, status)
    boot_seconds: dict[tuple[str, str], float] = field(default_factory=dict)   # (tree, entry)
    build_seconds: float = 0.0
    jobs: list[Job] = field(default_factory=list)             # not done yet: queued, running here, sent to workers
    workers: list[dict] | None = None                          # with queue.broker: the live workers' records
    trees: dict[str, dict] = field(default_factory=dict)      # by kind: path, upstreams' fetch records


def read(state: StateFolder, history: History | None = None, workers: list[dict] | None = None) -> Health:
    """The facts now, from the bot's database (read only: never the bot's writer), the trees' fetch
    logs and the result folders; `history`: the checks' history already open (the pages'), else
    opened; `workers`: the workers' records, when the bot has workers."""
    health = Health(workers=workers)
    held = State(state.database, readonly=True)
    try:
        health.polls = held.sources.polls()
        health.messages = held.messages.count()
        health.series, health.pushes = held.series.counts(), held.pushes.counts()
        health.lab_errors_in_a_row = held.jobs.lab_errors_in_a_row()
        health.jobs = held.jobs.in_state(*UNFINISHED)
        health.outbox, health.outbox_oldest = held.outbox.waiting(), held.outbox.oldest_pending()
    finally:
        held.close()
    health.trees = upstream.every_log(state.trees)
    for row in (history or History(state)).rows():   # every check: the bot's, a worker's, `bootbot check`
        health.checks[row["verdict"]] = health.checks.get(row["verdict"], 0) + 1
        for entry, (status, seconds) in json.loads(row["entries"]).items():
            key = (row["tree"], entry)
            health.boots[(*key, status)] = health.boots.get((*key, status), 0) + 1
            health.boot_seconds[key] = health.boot_seconds.get(key, 0.0) + seconds
        health.build_seconds += row["build_seconds"]
    return health


def metrics(health: Health) -> bytes:
    """Prometheus' text format."""
    registry = CollectorRegistry()
    registry.register(_Collector(health))
    return generate_latest(registry)


class _Collector:
    def __init__(self, health: Health):
        self.health = health

    def collect(self):
        h = self.health
        yield _family(GaugeMetricFamily, "bootbot_last_poll_seconds", "When each source was last polled (Unix time)",
                      ["source"], {(s,): p.polled or 0 for s, p in h.polls.items()})
        yield _family(GaugeMetricFamily, "bootbot_last_good_poll_seconds", "When each source last polled well",
                      ["source"], {(s,): p.succeeded or 0 for s, p in h.polls.items()})
        yield _family(CounterMetricFamily, "bootbot_polls", "Polls of each source", ["source"],
                      {(s,): p.polls for s, p in h.polls.items()})
        yield _family(CounterMetricFamily, "bootbot_poll_failures", "Polls of each source that failed", ["source"],
                      {(s,): p.failures for s, p in h.polls.items()})
        yield _family(GaugeMetricFamily, "bootbot_source_failing", "1 while a source's last poll failed",
                      ["source"], {(s,): int(bool(p.error)) for s, p in h.polls.items()})
        yield _family(CounterMetricFamily, "bootbot_messages", "Mails stored from all sources", [], {(): h.messages})
        yield _family(GaugeMetricFamily, "bootbot_series", "Series by state", ["state"],
                      {(k,): v for k, v in h.series.items()})
        yield _family(GaugeMetricFamily, "bootbot_pushes", "Branch heads by state", ["state"],
                      {(k,): v for k, v in h.pushes.items()})
        yield _family(CounterMetricFamily, "bootbot_checks", "Checks done, by verdict", ["verdict"],
                      {(k,): v for k, v in h.checks.items()})
        yield _family(GaugeMetricFamily, "bootbot_lab_errors_in_a_row", "Newest checks ended by the lab, in a row",
                      [], {(): h.lab_errors_in_a_row})
        yield _family(GaugeMetricFamily, "bootbot_outbox", "Replies not sent yet", [], {(): h.outbox})
        yield _family(GaugeMetricFamily, "bootbot_jobs", "Jobs not done yet, by state (queued, running, sent)",
                      ["state"], {(state,): sum(j.state == state for j in h.jobs)
                                  for state in UNFINISHED})
        fetches = {(kind, name): record for kind, tree in h.trees.items() for name, record in tree["upstreams"].items()}
        yield _family(GaugeMetricFamily, "bootbot_tree_fetch_age_seconds", "Seconds since each followed upstream "
                      "was last fetched well (since its first fetch when none went well)", ["tree", "upstream"],
                      {key: time.time() - _good(record) for key, record in fetches.items()})
        yield _family(GaugeMetricFamily, "bootbot_tree_fetch_failing", "1 while an upstream's last fetch failed",
                      ["tree", "upstream"], {key: int(bool(record.get("error"))) for key, record in fetches.items()})
        yield _family(CounterMetricFamily, "bootbot_boots", "Boots by entry and status (deciding attempts)",
                      ["tree", "entry", "status"], h.boots)
        yield _family(CounterMetricFamily, "bootbot_boot_seconds", "Seconds of deciding boots, by entry",
                      ["tree", "entry"], h.boot_seconds)
        yield _family(CounterMetricFamily, "bootbot_build_seconds", "Seconds of builds", [], {(): h.build_seconds})


def _family(kind, name: str, what: str, labels: list[str], values: Mapping[tuple, float]):
    family = kind(name, what, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def lines(health: Health, now: float | None = None) -> list[str]:
    """The same, for a person."""
    now = now or time.time()

    def ago(at) -> str:
        return f"{now - at:.0f} s ago" if at else "never"

    said = [f"source {s}: polled {ago(p.polled)}, last good poll {ago(p.succeeded)}"
            + (f", failing: {p.error}" if p.error else "") for s, p in sorted(health.polls.items())]
    said += [f"mails stored: {health.messages}",
             f"series: {_counts(health.series)}; branch heads: {_counts(health.pushes)}",
             f"checks: {_counts(health.checks)}; lab errors in a row: {health.lab_errors_in_a_row}",
             f"outbox: {health.outbox} not sent" + (f", the oldest pending made {ago(health.outbox_oldest)}"
                                                   if health.outbox_oldest else "")]
    said += [f"tree {kind} {tree['path']}: {name} fetched {ago(record.get('fetched'))}, last good fetch "
             f"{ago(record.get('succeeded'))}" + (f", failing: {record['error']}" if record.get("error") else "")
             for kind, tree in sorted(health.trees.items()) for name, record in sorted(tree["upstreams"].items())]
    said += [_job(j, ago) for j in health.jobs]
    said += [_worker(w, ago) for w in health.workers or []]
    if health.workers == []:
        said.append("workers: none alive")
    said += [f"boots of {tree} {entry}: " + _counts({s: n for (t, e, s), n in health.boots.items()
                                                       if (t, e) == (tree, entry)})
             for tree, entry in sorted(health.boot_seconds)]
    return said


def _job(job: Job, ago) -> str:
    where = {"queued": "queued", "running": "checking here", "sent": f"on the workers' queue, sent {ago(job.sent)}"}
    return f"job {job.id}: {where[job.state]}, attempt {job.attempts}" \
        + (f"; waits: {job.waiting}" if job.waiting and job.state == JobState.QUEUED else "")


def _worker(worker: dict, ago) -> str:
    doing = f"checking job {worker['job']['id']} since {ago(worker['job']['since'])}" if worker["job"] else "idle"
    def offered(kind: str) -> str:
        return " ".join(o.removeprefix(kind) for o in worker["offers"] if o.startswith(kind))

    return (f"worker {worker['name']} on {worker['host']}: {doing}, {worker['checked']} checked, last heartbeat "
            f"{ago(worker['beat'])}; offers {offered('entry:')} ({offered('accel:')})")


def _good(record: dict) -> float:
    """When an upstream was last fetched well; its first attempt when never."""
    return record.get("succeeded") or record.get("first") or 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "none"


@dataclass(frozen=True)
class Limits:
    stale_seconds: float     # no source polled well for this long
    lab_errors: int          # this many checks in a row ended by the lab
    outbox_seconds: float    # a reply pending this long
    tree_stale_seconds: float   # a followed upstream whose fetches fail, not fetched well for this long


def alarms(health: Health, limits: Limits, now: float | None = None) -> dict[str, str]:
    """The conditions an operator must hear of now, by key."""
    now = now or time.time()
    raised = {}
    good = [p.succeeded for p in health.polls.values() if p.succeeded]
    if health.polls and now - max(good, default=0) > limits.stale_seconds:
        raised["stale"] = (f"no source has polled well for over {limits.stale_seconds:.0f} s: "
                           + "; ".join(f"{s}: {p.error or 'ok'}" for s, p in sorted(health.polls.items())))
    if health.lab_errors_in_a_row >= limits.lab_errors:
        raised["lab"] = f"the last {health.lab_errors_in_a_row} checks ended in lab errors, not verdicts"
    for kind, tree in sorted(health.trees.items()):
        for name, record in sorted(tree["upstreams"].items()):
            if record.get("error") and now - _good(record) > limits.tree_stale_seconds:
                raised[f"tree-{kind}-{name}"] = (
                    f"the {kind} tree ({tree['path']}) has not fetched {name} well for over "
                    f"{limits.tree_stale_seconds:.0f} s: {record['error']}")
    if health.outbox_oldest and now - health.outbox_oldest > limits.outbox_seconds:
        raised["outbox"] = (f"a reply has waited in the outbox for over {limits.outbox_seconds:.0f} s "
                            f"({health.outbox} not sent): see `bootbot outbox list`")
    return raised
