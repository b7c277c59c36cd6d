"""Benchmark checks on workers (queue.broker), against a real redis-server and public-inbox archive.

    .venv/bin/python bench/queue_bench.py [--series N] [--rounds N] [--skip-scaling]

1. Scaling: N (10) real series on the Linux tree, each a comment of its own in the decompressor's
   misc.c (so each rebuilds and boots what misc.c reaches), posted at once and checked by one
   worker with all the cores (make -j<cores>, that many boots at once), then by two workers with
   half each, every worker with its own state, as separate machines would have. Wall time from
   the bot's first cycle to its last verdict; the ratio two/one. The workers build in
   <tree>/../bench-workspaces (kept: a slot each), warmed by one series each first, so every
   series costs an incremental build and its boots, the base's boots cached.
2. The queue's cost: N series refused on a tiny tree (a real verdict with no build, so nothing
   but the queue is measured), checked by the bot in-process (its floor: the same checks, no
   queue) and through Redis by one worker; per job, the median of `--rounds` rounds, and the ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import trees  # noqa: E402  tests/trees.py: the Linux tree, and series made with git plumbing
from bot import config as configuration, daemon, sources  # noqa: E402
from bot.changes import assembly  # noqa: E402
from bot.state.jobs import JobState  # noqa: E402
from inbox import PublicInbox  # noqa: E402
from redis_server import RedisServer  # noqa: E402
from harness import Worker, posted, refused  # noqa: E402  tests/harness.py: what the tests share
from tiny_tree import make_repo  # noqa: E402

LIST = "xen-devel@lists.example.org"
MISC_C = ("arch/x86/boot/compressed/misc.c", '#include "misc.h"\n')


class Lab:
    """An archive, a broker and a bot configuration; workers made on demand."""

    def __init__(self, root: Path, tree: Path, broker: bool):
        root.mkdir()
        self.root, self.tree = root, tree
        self.inbox = PublicInbox(root / "archive", address=LIST)
        self.redis = RedisServer(root / "redis") if broker else None
        self.config = self.write(root / "bot.toml", root / "bot", self.redis and f"""
[queue]
broker = "{self.redis.url}"
heartbeat_seconds = 1
""")
        self.inbox.serve()
        self.config.write_text(self.config.read_text() + f"""
[archive]
url = "{self.inbox.url}"
[[sources]]
name = "xen-devel"
kind = "inbox"
url = "{self.inbox.url}"
list = "{LIST}"
[mail]
from = "bootbot <bootbot@example.org>"
smtp = "outbox"
reply_on = []
[commands]
require_dkim = false
""")
        self.workers: list[Worker] = []

    def write(self, path: Path, home: Path, extra: str | None, jobs: int = 0, slots: int = 1) -> Path:
        path.write_text(f"""
[state]
dir = "{home / 'state'}"
[trees.linux]
path = "{self.tree}"
upstream = []
[trees.xen]
path = ""
[build]
dir = "{self.tree.parent / 'bench-workspaces' / 'queue'}"
workspaces = {slots}
jobs = {jobs}
[boot]
jobs = {jobs}
[limits]
max_patches = 2
""" + (extra or ""))
        return path

    def worker(self, name: str, jobs: int, slots: int) -> Worker:
        home = self.root / name
        home.mkdir()
        config = self.write(home / "worker.toml", home, f"""
[queue]
broker = "{self.redis.url}"
heartbeat_seconds = 1
[worker]
name = "{name}"
""", jobs, slots)
        self.workers.append(Worker(config, name))
        return self.workers[-1]

    def post(self, mbox_parts: list[bytes]) -> None:
        for message in mbox_parts:
            self.inbox.deliver(message)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.redis:
            self.redis.stop()
        self.inbox.close()


def linux_series(tree: Path, out: Path, name: str) -> list[bytes]:
    path, anchor = MISC_C
    return posted(trees.make_series(tree, out / name, [
        (f"x86/boot: comment {name}", {path: trees.add_after(anchor, f"/* queue_bench: {name} */\n")})]))


def refused_series(repo: Path, out: Path, name: str) -> list[bytes]:
    return [mail.read_bytes().split(b"\n", 1)[1] for mail in refused(SimpleNamespace(repo=repo, root=out), name)]


def done_jobs(bot) -> int:
    ended = bot.state.jobs.in_state(JobState.DONE, JobState.FAILED, JobState.CANCELLED)
    failed = [j for j in ended if j.state != JobState.DONE or j.verdict == "error"]
    if failed:
        raise RuntimeError(f"jobs without a verdict: {failed}")
    return len(ended)


def until_done(bot, step, expected: int, seconds: float) -> float:
    """`step` again and again until `expected` jobs are done; the seconds it took."""
    start = time.monotonic()
    while done_jobs(bot) < expected:
        if time.monotonic() - start > seconds:
            raise RuntimeError(f"{done_jobs(bot)} of {expected} jobs done after {seconds} s")
        step(bot)
    return time.monotonic() - start


def cycles(bot) -> None:
    daemon.cycle(bot)
    time.sleep(0.5)   # each cycle polls the archive too: a cycle every half second, as a busy bot


def queued(bot) -> None:
    """The cycle's steps before the checks: the new series filed and queued."""
    sources.poll(bot.sources)
    assembly.take_new_messages(bot.state, bot.policy)
    assembly.queue_complete_series(bot.state, bot.policy, lambda s: bot.settings.checkable(s.files))


def scaling(count: int, scratch: Path) -> dict[int, float]:
    tree, cores = trees.linux(), os.cpu_count() or 2
    walls = {}
    for workers in (1, 2):
        lab = Lab(scratch / f"scaling-{workers}", tree, broker=True)
        try:
            for n in range(workers):
                lab.worker(f"w{n + 1}", jobs=max(1, cores // workers), slots=2)
            bot = daemon.make(configuration.load(lab.config))
            for n in range(workers):   # warm: a series each at once, so each worker's slot is built
                lab.post(linux_series(tree, lab.root, f"warm-{n}"))
            until_done(bot, cycles, workers, 7200)
            for n in range(count):
                lab.post(linux_series(tree, lab.root, f"round-{n}"))
            walls[workers] = until_done(bot, cycles, workers + count, 7200)
        finally:
            lab.close()
        print(f"scaling: {count} series on {workers} worker(s): {walls[workers]:.0f} s", flush=True)
    return walls


def overhead(count: int, rounds: int, scratch: Path) -> dict[str, float]:
    """Seconds per job, in-process and through the queue: the median of `rounds` rounds."""
    repo = make_repo(scratch)
    per_job = {}
    for broker in (False, True):
        lab = Lab(scratch / f"overhead-{'queue' if broker else 'here'}", repo, broker)
        try:
            if broker:
                lab.worker("w1", jobs=0, slots=1)
            bot = daemon.make(configuration.load(lab.config))
            samples = []
            for round_ in range(rounds):
                for n in range(count):
                    lab.post(refused_series(repo, lab.root, f"r{round_}-{n}"))
                queued(bot)
                samples.append(until_done(bot, daemon.jobs.run, count * (round_ + 1), 600) / count)
            per_job["queue" if broker else "here"] = statistics.median(samples)
        finally:
            lab.close()
    return per_job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-scaling", action="store_true", help="only the queue's cost (no kernel builds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bootbot-queue-bench-") as scratch:
        cost = overhead(args.series, args.rounds, Path(scratch))
        print(f"per job, {args.series} refused series a round, median of {args.rounds} rounds: in-process "
              f"{cost['here'] * 1000:.1f} ms, through Redis and one worker {cost['queue'] * 1000:.1f} ms: "
              f"ratio {cost['queue'] / cost['here']:.2f}, the queue's cost {(cost['queue'] - cost['here']) * 1000:.1f} ms",
              flush=True)
        if not args.skip_scaling:
            walls = scaling(args.series, Path(scratch))
            print(f"{args.series} series: one worker (all {os.cpu_count()} cores) {walls[1]:.0f} s, two workers "
                  f"(half each) {walls[2]:.0f} s: ratio {walls[2] / walls[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
