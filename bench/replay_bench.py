"""Replay real patches against a tree that follows a real upstream.

    .venv/bin/python bench/replay_bench.py --upstream URL_OR_PATH --since 2025-03-01 --until 2025-03-15
        [--tree xen] [--branch staging] [--paths xen/arch/x86/] [--weeks-before 6] [--limit N]
        [--work DIR] [--json FILE]

For each commit of the upstream's branch in the range that touches the paths (first parents, oldest
first), the upstream is moved to the commit's parent, what it was just before the commit landed,
and the commit is mailed as its author posted it (`git format-patch`; every other one with its
base-commit, the rest without). It is checked with `bootbot check` against a tree cloned from the
upstream `--weeks-before` the range and never fetched by hand: the tree follows the upstream as
the configuration says. The replay posts a series every few minutes on a base that landed just
before, where the list's bases are hours or days old, older than serve's fetch period; so a mail
without base-commit is checked after the periodic fetch (`bootbot trees fetch`), as it would be
on the list, and a mail with one finds its base by the check's own fetch for a missing
base-commit (refetch_seconds = 0: every such check may fetch).

It prints: patches; bases found (by base-commit, by blobs, by tag; unknown); for the mails without
base-commit, blob guesses that hold the parent's files and that are the parent itself; verdicts;
false blames (a failure blamed on a committed patch, which review passed); fetches per check and
their seconds against the check's own. The work folder is kept (--work), so that a second run
builds incrementally; the tree is cloned again each run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOTBOT = REPO / ".venv" / "bin" / "bootbot"
BLAMED = ("regression", "build-failed", "apply-failed")
KNOWN = ("base-commit", "blobs")


def git(cwd: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, check=True).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="a git URL or path: xen.git, or the real slice in ../shared")
    parser.add_argument("--since", required=True, help="the range's first day (YYYY-MM-DD)")
    parser.add_argument("--until", required=True, help="its last day")
    parser.add_argument("--tree", default="xen", help="the tree kind (default: xen)")
    parser.add_argument("--branch", default="staging")
    parser.add_argument("--paths", nargs="+", default=["xen/arch/x86/"], help="what a replayed commit touches")
    parser.add_argument("--weeks-before", type=int, default=6, help="how old the tree is when the range starts")
    parser.add_argument("--limit", type=int, help="at most this many commits")
    parser.add_argument("--work", type=Path, help="kept between runs (builds stay warm); default: a new folder")
    parser.add_argument("--json", type=Path, help="every check's facts")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="replay-"))
    upstream, tree, config = prepare(args, work)
    commits = git(upstream, "rev-list", "--reverse", "--first-parent", f"--since={args.since}T00:00:00",
                  f"--until={args.until}T23:59:59", history(args.branch), "--", *args.paths).split()[:args.limit]
    print(f"replaying {len(commits)} commits of {args.branch} ({args.since} .. {args.until}) touching "
          f"{' '.join(args.paths)}, on a tree cloned {args.weeks_before} weeks before", file=sys.stderr)
    checks = []
    for n, commit in enumerate(commits):
        parent = git(upstream, "rev-parse", f"{commit}~1").strip()
        git(upstream, "update-ref", f"refs/heads/{args.branch}", parent)   # the upstream as it was then
        with_base = n % 2 == 0
        checks.append(replay(work, upstream, config, args.tree, commit, parent, with_base, periodic=not with_base))
        c = checks[-1]
        print(f"  {n + 1}/{len(commits)} {commit[:12]} {c['verdict']:<13} base by {c['base_by'] or '-':<11} "
              f"{'exact' if c['base'] == parent else '':<5} {c['seconds']:6.1f} s  {c['subject'][:50]}",
              file=sys.stderr, flush=True)
    report(checks)
    if args.json:
        args.json.write_text(json.dumps(checks, indent=1) + "\n")
    return 0


def prepare(args, work: Path) -> tuple[Path, Path, Path]:
    """The moving upstream (a bare copy whose branch the replay moves), the bot's tree cloned from
    it as it was weeks before the range, and a configuration following it."""
    upstream, tree, state = work / "upstream.git", work / "tree", work / "state"
    if not upstream.exists():
        subprocess.run(["git", "clone", "-q", "--bare", "--no-local", str(args.upstream), str(upstream)], check=True)
        git(upstream, "update-ref", history(args.branch), args.branch)   # the branch as it is: the replay moves it
    start = git(upstream, "rev-list", "-1", "--first-parent", f"--until={days_before(args.since, 7 * args.weeks_before)}",
                history(args.branch)).strip()
    if not start:
        raise SystemExit(f"replay_bench: {args.upstream} has no {args.branch} commit {args.weeks_before} weeks "
                         f"before {args.since}")
    for ref in git(upstream, "for-each-ref", "--format=%(refname)", "refs/heads/").split():
        if ref != f"refs/heads/{args.branch}":   # the replay moves one branch through time: the others would lie
            git(upstream, "update-ref", "-d", ref)
    git(upstream, "update-ref", f"refs/heads/{args.branch}", start)
    shutil.rmtree(tree, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)   # the fetch log and results of an earlier run
    # through git's transport, as from a server: only what the branch reached then (a local clone
    # hard-links every object, the replay's future commits among them)
    git(work, "clone", "-q", "--no-local", "--branch", args.branch, str(upstream), str(tree))
    config = work / "bootbot.toml"
    config.write_text(f"""[state]
dir = "{state}"
[build]
dir = "{work / 'workspaces'}"
[trees.{args.tree}]
path = "{tree}"
branch = "{args.branch}"
fetch_seconds = 1e12   # the replay runs the periodic fetch itself
refetch_seconds = 0
upstream = [{{ name = "up", url = "file://{upstream}", branches = ["{args.branch}"] }}]
""")
    return upstream, tree, config


def history(branch: str) -> str:
    """Where the replay keeps the upstream branch's real history."""
    return f"refs/replay/{branch}"


def days_before(day: str, days: int) -> str:
    return time.strftime("%Y-%m-%dT00:00:00", time.gmtime(time.mktime(time.strptime(day, "%Y-%m-%d")) - days * 86400))


def replay(work: Path, upstream: Path, config: Path, kind: str, commit: str, parent: str, with_base: bool,
           periodic: bool) -> dict:
    """One commit mailed and checked; its facts."""
    mail = work / "mail" / f"{commit[:12]}.mbox"
    mail.parent.mkdir(exist_ok=True)
    mail.write_text(git(upstream, "format-patch", "-1", "--stdout", *([f"--base={parent}"] if with_base else []),
                        commit))
    before = fetch_log(work, kind)
    started = time.monotonic()
    if periodic:
        subprocess.run([BOOTBOT, "--config", str(config), "trees", "fetch", kind], capture_output=True, text=True)
    out = work / "outcome.json"
    out.unlink(missing_ok=True)
    done = subprocess.run([BOOTBOT, "--config", str(config), "check", str(mail), "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True)
    seconds = time.monotonic() - started
    after = fetch_log(work, kind)
    outcome = json.loads(out.read_text()) if out.exists() else {}
    return {"commit": commit, "parent": parent, "with_base": with_base, "subject": git(upstream, "show", "-s",
                                                                                       "--format=%s", commit).strip(),
            "verdict": outcome.get("verdict", f"exit {done.returncode}"), "base": outcome.get("base"),
            "base_by": outcome.get("base_by", ""), "base_how": outcome.get("base_how", ""),
            "culprit": outcome.get("culprit"), "detail": outcome.get("detail", done.stderr.splitlines()[-3:]),
            "seconds": round(seconds, 1), "periodic": periodic,
            "fetches": after["fetches"] - before["fetches"],
            "fetch_seconds": round(after["total_seconds"] - before["total_seconds"], 2)}


def fetch_log(work: Path, kind: str) -> dict:
    try:
        record = json.loads((work / "state" / "trees" / f"{kind}.json").read_text())["upstreams"]["up"]
    except (OSError, KeyError, ValueError):
        return {"fetches": 0, "total_seconds": 0.0}
    return {"fetches": record["fetches"], "total_seconds": record["total_seconds"]}


def report(checks: list[dict]) -> None:
    mailed = len(checks)
    by = Counter(c["base_by"] if c["base_by"] in KNOWN + ("tag",) else "unknown" for c in checks
                 if c["verdict"] not in ("skip", "refused"))
    with_base = [c for c in checks if c["with_base"] and c["verdict"] not in ("skip", "refused")]
    without = [c for c in checks if not c["with_base"] and c["verdict"] not in ("skip", "refused")]
    blobs = [c for c in without if c["base_by"] == "blobs"]
    blamed = [c for c in checks if c["verdict"] in BLAMED and c["base_by"] in KNOWN]
    on_guess = [c for c in checks if c["verdict"] in BLAMED + ("no-base",) and c["base_by"] not in KNOWN]
    fetches = [c["fetches"] for c in checks]
    fetch_seconds = [c["fetch_seconds"] for c in checks]
    check_seconds = [c["seconds"] for c in checks]
    print(f"patches: {mailed} ({len(with_base)} with base-commit, {len(without)} without, "
          f"{mailed - len(with_base) - len(without)} skipped or refused)")
    print(f"bases: by base-commit {by['base-commit']}, by blobs {by['blobs']}, by tag {by['tag']}, "
          f"unknown {by['unknown']}")
    print(f"base-commits found: {sum(c['base_by'] == 'base-commit' for c in with_base)} of {len(with_base)}")
    print(f"blob guesses (no base-commit): {len(blobs)} of {len(without)} hold the parent's files "
          f"({percent(len(blobs), len(without))}); {sum(c['base'] == c['parent'] for c in blobs)} are the parent")
    print("verdicts: " + ", ".join(f"{v} {n}" for v, n in sorted(Counter(c["verdict"] for c in checks).items())))
    print(f"false blames: {len(blamed)}" + "".join(f"\n  {c['commit'][:12]} {c['verdict']}: {c['subject']}"
                                                   for c in blamed))
    print(f"failures on a guessed base, blaming nobody: {len(on_guess)}"
          + "".join(f"\n  {c['commit'][:12]} {c['verdict']}: {c['subject']}" for c in on_guess))
    if checks:
        print(f"fetches per check: median {statistics.median(fetches)}, mean {statistics.mean(fetches):.2f}; "
              f"seconds per check: median {statistics.median(fetch_seconds):.2f}, "
              f"{sum(fetch_seconds) / sum(check_seconds):.3f} of the checks' time "
              f"(checks: median {statistics.median(check_seconds):.0f} s)")


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


if __name__ == "__main__":
    sys.exit(main())
