"""Benchmark the results pages with a list's history: 10,000 stored checks. Time to serve the
index and a check page, each against a static file of the same size served by the same server
(its /checks/FOLDER/files/ route, which reads the file and sends it).

    .venv/bin/python bench/pages_bench.py [--checks N] [--rounds N]

The result folders are written from one real-looking outcome (five entries, consoles of 300
lines); the first request reads them all into the history (timed apart: it happens once)."""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from bot import folders  # noqa: E402
from bot.folders import StateFolder  # noqa: E402
from bot.reports import web  # noqa: E402
from bot.folders import EntryOutcome, Outcome  # noqa: E402

ENTRIES = ("bios", "efi", "pvh", "xen-pv", "xen-pvh")


def store(results: Path, count: int) -> list[str]:
    console = "".join(f"[    {n / 100:.6f}] a kernel line {n}\n" for n in range(300)) + "bootbot: userspace reached\n"
    names = []
    for n in range(count):
        folder = results / f"2026{1 + n // 100000:02d}{1 + n // 10000 % 28:02d}-{n // 60 % 24:02d}{n % 60:02d}00-{n:06x}"
        (folder / "boots").mkdir(parents=True)
        (folder / "boots" / "console.log").write_text(console)
        entries = {e: EntryOutcome("fail" if n % 7 == 0 and e == "pvh" else "pass", "pass", 5.0 + n % 3,
                                   "bootbot: userspace reached", "boots/console.log", "boots/console.log", False, "tcg",
                                   base_attempts=[{"status": "pass", "seconds": 5.0, "reason": "bootbot: userspace reached",
                                                   "log": "boots/console.log"}]) for e in ENTRIES}
        outcome = Outcome("regression" if n % 7 == 0 else "pass", {
            "subject": f"x86/boot: change {n}", "version": 1, "author": f"Dev {n % 50} <dev{n % 50}@example.org>",
            "patches": [{"index": 1, "subject": f"x86/boot: change {n}", "msgid": f"{n}@example.org"}]},
            tree="linux", base="0" * 40, entries=entries, origin={"source": "xen-devel", "link": ""})
        folders.write(folder, replace(outcome, regressed=["pvh"] if n % 7 == 0 else []))
        names.append(folder.name)
    return names


def timed(session: requests.Session, url: str) -> tuple[float, int]:
    start = time.monotonic()
    answer = session.get(url, timeout=120)
    answer.raise_for_status()
    return time.monotonic() - start, len(answer.content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bootbot-pages-bench-") as scratch:
        results = Path(scratch) / "state" / "results"
        names = store(results, args.checks)
        bound = web.server(StateFolder(results.parent), "127.0.0.1:0", "bootbot <bootbot@example.org>")
        threading.Thread(target=bound.serve_forever, daemon=True).start()
        url, http = web.url(bound), requests.Session()
        first, _ = timed(http, url)
        index_size = timed(http, url)[1]
        check_size = timed(http, f"{url}checks/{names[-1]}")[1]
        for name, size in (("index.html", index_size), ("check.html", check_size)):
            (results / names[0] / name).write_bytes(b"x" * size)
        rounds = {"index": [], "index floor": [], "check": [], "check floor": []}
        for _ in range(args.rounds):
            rounds["index"].append(timed(http, url)[0])
            rounds["index floor"].append(timed(http, f"{url}checks/{names[0]}/files/index.html")[0])
            rounds["check"].append(timed(http, f"{url}checks/{names[len(names) // 2]}")[0])
            rounds["check floor"].append(timed(http, f"{url}checks/{names[0]}/files/check.html")[0])
    median = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"checks stored: {args.checks}; rounds: {args.rounds}; first request (reads every folder once): {first:.2f} s")
    for page, size in (("index", index_size), ("check", check_size)):
        print(f"{page} page ({size} bytes): median {median[page] * 1000:.1f} ms; a static file of that size: "
              f"{median[page + ' floor'] * 1000:.1f} ms; ratio {median[page] / median[page + ' floor']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
