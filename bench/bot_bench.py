"""Benchmark the list bot: how long from a series entering the archive to bootbot's reply at the
SMTP server, with `serve` polling every 10 s on a warm tree; and what an idle poll costs.

    .venv/bin/python bench/bot_bench.py [--rounds N]

Real parts throughout: a public-inbox archive served by public-inbox-httpd, an aiosmtpd server,
and real checks (build, boots) of two-patch series on the Linux tree of scripts/linux-tree.
The floor for the idle poll is the same single manifest request made by hand."""
from __future__ import annotations

import argparse
import mailbox
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import trees  # noqa: E402  (the tests' helpers: the Linux tree, series, archive, SMTP sink)
from bot.sources.inbox import Inbox  # noqa: E402
from bot.state import State  # noqa: E402
from inbox import PublicInbox  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

INTERVAL = 10
LATENCY_GOAL = 60.0
PVH_C = "arch/x86/platform/pvh/enlighten.c"
ANCHOR = "#include <xen/interface/hvm/start_info.h>\n"


def series(tree: Path, out: Path, label: str) -> list[bytes]:
    """A harmless two-patch series, different each round so each round really rebuilds."""
    mbox = trees.make_series(tree, out, [
        (f"x86/pvh: comment the entry ({label})", {PVH_C: trees.add_after(ANCHOR, f"/* bench {label} a */\n")}),
        (f"x86/pvh: comment it again ({label})", {PVH_C: trees.add_after(ANCHOR, f"/* bench {label} b */\n")}),
    ])
    return [m.as_bytes() for m in mailbox.mbox(mbox)]


def config(root: Path, tree: Path, inbox: PublicInbox, sink: SmtpSink) -> Path:
    path = root / "bot.toml"
    path.write_text(f"""
[state]
dir = "{root / 'state'}"
[archive]
url = "{inbox.serve()}"
[[sources]]
name = "xen-devel"
kind = "inbox"
url = "{inbox.url}"
list = "{inbox.address}"
[trees.linux]
path = "{tree}"
upstream = []
[build]
dir = "{tree.parent / 'bench-workspaces'}"
[mail]
from = "bootbot <bootbot@example.org>"
smtp = "{sink.url}"
reply_on = ["pass", "regression", "apply-failed", "build-failed"]
moderate = false   # the bench counts replies sent, not held for review
[commands]
require_dkim = false
[poll]
interval_seconds = {INTERVAL}
""")
    return path


def latency(inbox: PublicInbox, sink: SmtpSink, messages: list[bytes]) -> float:
    """Seconds from the last mail of a series entering the archive to the reply at the sink."""
    waiting_for = len(sink.received) + 1
    for message in messages:
        inbox.deliver(message)
    entered = time.monotonic()
    sink.wait_for(waiting_for, timeout=900)
    return time.monotonic() - entered


def idle_polls(root: Path, url: str, rounds: int) -> tuple[list[float], list[float], int]:
    """Idle polls through bootbot's poller (a copy of the bot's state, the bot stopped) against
    the same manifest request by hand."""
    state = State(root / "state" / "bootbot.sqlite3")
    archive = Inbox("xen-devel", state, set(), url=url, mirrors=root / "state" / "sources" / "xen-devel")
    count = []
    archive.http.hooks["response"].append(lambda response, *a, **k: count.append(response.url))
    archive.poll()   # the bot may have stopped between a delivery and its poll: catch up first
    count.clear()
    polls, floor = [], []
    for _ in range(rounds):
        start = time.monotonic()
        archive.poll()
        polls.append(time.monotonic() - start)
        start = time.monotonic()
        requests.get(f"{url}/manifest.js.gz", timeout=30).raise_for_status()
        floor.append(time.monotonic() - start)
    return polls, floor, len(count) // rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tree = trees.linux()
    with tempfile.TemporaryDirectory(prefix="bootbot-bot-bench-") as scratch:
        root = Path(scratch)
        inbox, sink = PublicInbox(root / "archive"), SmtpSink()
        sink.start()
        bot = subprocess.Popen([sys.executable, "-m", "bot.cli", "--config", str(config(root, tree, inbox, sink)),
                                "serve"], cwd=REPO, stderr=(root / "serve.log").open("w"), start_new_session=True)
        try:
            warm = latency(inbox, sink, series(tree, root / "warm", f"warm-{time.time_ns()}"))
            print(f"warm-up (base boots, KVM probe, workspace): {warm:.1f} s", flush=True)
            seconds = []
            for n in range(args.rounds):
                seconds.append(latency(inbox, sink, series(tree, root / f"s{n}", f"{n}-{time.time_ns()}")))
                print(f"round {n + 1}/{args.rounds}: archive to reply {seconds[-1]:.1f} s", flush=True)
        finally:
            bot.send_signal(signal.SIGTERM)
            bot.wait(timeout=120)
        polls, floor, asked = idle_polls(root, inbox.url, 10)
        inbox.close()
        sink.stop()
    median = statistics.median(seconds)
    print(f"\npoll interval: {INTERVAL} s; rounds: {args.rounds}")
    print(f"archive to reply: median {median:.1f} s (rounds: {', '.join(f'{s:.1f}' for s in seconds)}); "
          f"goal <= {LATENCY_GOAL:.0f} s: {'met' if median <= LATENCY_GOAL else 'NOT met'}")
    print(f"idle poll: median {statistics.median(polls) * 1000:.1f} ms, {asked} HTTP request(s), no git fetch; "
          f"the same manifest request by hand: {statistics.median(floor) * 1000:.1f} ms; "
          f"ratio {statistics.median(polls) / statistics.median(floor):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
