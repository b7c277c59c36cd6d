"""Benchmark the console classifier on the labelled corpus (tests/data/labels.toml): of the logs
labelled with a failure, how many each kind's patterns flag as that kind (recall), and of the logs
of boots without one, how many are flagged all the same (false alarms); then how fast it reads
(median of rounds of every line of the corpus through a console, against the floor of cleaning
the same lines without judging them).

    .venv/bin/python bench/console_bench.py [--rounds N] [--checks DIR]

--checks judges with another checks/ folder's console.toml (an older commit's, say), to compare.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from bot import declarations  # noqa: E402
from bot.boots.console import Console, clean, judge_log  # noqa: E402

DATA = REPO / "tests" / "data"
ANY_MARKER = re.compile("bootbot: userspace reached, nonce [0-9a-f]+")


def judged(patterns, labels: dict, texts: dict) -> dict:
    """Each log's decision, read as `bootbot classify` reads it."""
    decisions = {}
    for name, label in labels.items():
        success = re.compile(label["success"]) if label.get("success") else ANY_MARKER
        decisions[name] = judge_log(Console(success, patterns), texts[name])[0]
    return decisions


def report(labels: dict, decisions: dict) -> None:
    labelled, flagged, other = Counter(), Counter(), Counter()
    for name, label in labels.items():
        decision = decisions[name]
        if label["status"] == "fail":
            labelled[label["kind"]] += 1
            if decision and decision.status == "fail":
                (flagged if decision.kind == label["kind"] else other)[label["kind"]] += 1
    print(f"{'kind':<18}{'logs':>6}{'flagged':>9}{'as another kind':>17}{'recall':>9}")
    for kind in sorted(labelled):
        print(f"{kind:<18}{labelled[kind]:>6}{flagged[kind]:>9}{other[kind]:>17}{flagged[kind] / labelled[kind]:>9.0%}")
    total = sum(labelled.values())
    print(f"{'all':<18}{total:>6}{sum(flagged.values()):>9}{sum(other.values()):>17}"
          f"{sum(flagged.values()) / total:>9.0%}")
    clean_logs = [name for name, label in labels.items() if label["status"] == "pass"]
    alarms = [name for name in clean_logs if decisions[name] and decisions[name].status == "fail"]
    print(f"\nlogs of boots without a failure: {len(clean_logs)}, flagged: {len(alarms)}")
    for name in alarms:
        print(f"  {name}: {decisions[name].kind}: {decisions[name].reason}")


def fed(patterns, texts: dict) -> None:
    """Every line of every log through a console, as a live boot's lines are (past a decision too)."""
    for text in texts.values():
        console = Console(ANY_MARKER, patterns)
        for line in text.split("\n"):
            console.feed(line)


def timed(work, rounds: int) -> float:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checks", type=Path, default=REPO / "checks", help="the declarations to judge with")
    args = parser.parse_args(argv)
    patterns = declarations.load(args.checks).patterns
    labels = tomllib.loads((DATA / "labels.toml").read_text())
    texts = {name: (DATA / name).read_bytes().decode("utf-8", "replace") for name in labels}
    report(labels, judged(patterns, labels, texts))
    lines = sum(text.count("\n") + 1 for text in texts.values())
    judging = timed(lambda: fed(patterns, texts), args.rounds)
    floor = timed(lambda: [clean(line) for text in texts.values() for line in text.split("\n")], args.rounds)
    print(f"\nspeed, median of {args.rounds} rounds over every line of the {len(texts)} logs ({lines} lines):"
          f"\n  judged: {judging * 1000:.1f} ms ({lines / judging:,.0f} lines/s)"
          f"\n  floor, lines cleaned but not judged: {floor * 1000:.1f} ms ({lines / floor:,.0f} lines/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
