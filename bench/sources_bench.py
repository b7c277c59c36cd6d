"""Benchmark an idle poll of five sources (two inboxes, a query, two branches) against the same
requests made by hand: a manifest per inbox, the search per query, `git ls-remote` per branch.

    .venv/bin/python bench/sources_bench.py [--rounds N]

Real servers on loopback: public-inbox-httpd (the query's archive searched with Xapian) and git
daemon, each source caught up first, so every round finds nothing new: what the bot pays every
poll interval while the lists are quiet."""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bot import sources  # noqa: E402
from bot.sources.branch import Branch  # noqa: E402
from bot.sources.inbox import Inbox  # noqa: E402
from bot.sources.query import Query  # noqa: E402
from bot.state import State  # noqa: E402
from git_server import GitServer  # noqa: E402
from inbox import PublicInbox  # noqa: E402
from tiny_tree import make_repo, patches  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bootbot-sources-bench-") as scratch:
        root = Path(scratch)
        repo = make_repo(root)
        inboxes = [PublicInbox(root / name, name, f"{name}@example.org") for name in ("xen-devel", "x86", "efi")]
        mails = patches(repo, root / "p", 1, count=2)
        for inbox in inboxes:
            for mail in mails:
                inbox.deliver(mail.read_bytes().split(b"\n", 1)[1])
            inbox.serve()
        server = GitServer(root / "git")
        for name in ("tip", "next"):
            subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(root / "git" / f"{name}.git")], check=True)
        state = State(root / "state" / "bootbot.sqlite3")
        query = "dfn:arch/x86/boot/ OR dfn:arch/x86/platform/pvh/ OR dfn:arch/x86/xen/"
        followed = [
            *(Inbox(i.name, state, set(), url=i.url, mirrors=root / "state" / i.name) for i in inboxes[:2]),
            Query("efi", state, set(), url=inboxes[2].url, query=query),
            *(Branch(name, state, set(), url=server.url(f"{name}.git"), branch="master", tree_path=repo)
              for name in ("tip", "next"))]
        sources.poll(followed)   # caught up: every round after finds nothing new
        polls, floor = [], []
        http = requests.Session()
        for _ in range(args.rounds):
            start = time.monotonic()
            sources.poll(followed)
            polls.append(time.monotonic() - start)
            start = time.monotonic()
            for inbox in inboxes[:2]:
                http.get(f"{inbox.url}/manifest.js.gz", timeout=30).raise_for_status()
            since = int(time.time()) - 3600
            http.get(f"{inboxes[2].url}/", params={"q": f"({query}) AND rt:@{since}..", "x": "A"}, timeout=30)
            for name in ("tip", "next"):
                subprocess.run(["git", "ls-remote", server.url(f"{name}.git"), "refs/heads/master"],
                               capture_output=True, check=True)
            floor.append(time.monotonic() - start)
        new = [(name, poll.new_item) for name, poll in sorted(state.sources.polls().items())]
        server.close()
        for inbox in inboxes:
            inbox.close()
    print(f"sources: {len(followed)} (2 inboxes, 1 query, 2 branches); rounds: {args.rounds}")
    brought = ", ".join(f"{source}: {item or 'nothing new'}" for source, item in new)
    print(f"first poll brought: {brought}")
    print(f"idle poll: median {statistics.median(polls) * 1000:.1f} ms; the same requests by hand: median "
          f"{statistics.median(floor) * 1000:.1f} ms; ratio {statistics.median(polls) / statistics.median(floor):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
