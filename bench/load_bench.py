"""Verdicts under load: the same checks on an idle machine and beside CPU hogs (two per core).

    .venv/bin/python bench/load_bench.py [--hogs-per-core N] [--json FILE]

Two series on the Linux tree, each checked with a fresh state folder (so the base is booted in the
same run, as on a bot's first series of a base): one that breaks nothing, and one whose second of
three patches traps at pvh_start_xen. Idle first, then loaded. Under TCG a loaded machine boots
several times slower: bootbot's limits follow the base's boot time, and a failure counts only when
it repeats, so the verdicts must not change; the wall time does, and is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import trees  # noqa: E402  tests/trees.py: the Linux tree, and series made with git plumbing

BOOTBOT = REPO / ".venv" / "bin" / "bootbot"
PVH_C, PVH_ANCHOR = "arch/x86/platform/pvh/enlighten.c", "#include <xen/interface/hvm/start_info.h>\n"
PVH_HEAD, PVH_START = "arch/x86/platform/pvh/head.S", "SYM_CODE_START_LOCAL(pvh_start_xen)\n\tUNWIND_HINT_EMPTY\n"


def series(tree: Path, out: Path, breaking: bool) -> Path:
    comment = lambda n: trees.add_after(PVH_ANCHOR, f"/* load_bench {n} */\n")   # noqa: E731
    trap = ("x86/pvh: trap at pvh_start_xen", {PVH_HEAD: trees.replace(PVH_START, PVH_START + "\tud2\n")})
    return trees.make_series(tree, out, [("x86/pvh: comment", {PVH_C: comment(1)}), *([trap] if breaking else []),
                                         ("x86/pvh: comment again", {PVH_C: comment(2)})])


def check(tree: Path, scratch: Path, name: str, mbox: Path) -> dict:
    state = scratch / f"state-{name}"
    config = scratch / f"{name}.toml"
    config.write_text(f'[state]\ndir = "{state}"\n[build]\ndir = "{tree.parent / "bench-workspaces"}"\n')
    out = scratch / f"{name}.json"
    started = time.monotonic()
    subprocess.run([str(BOOTBOT), "--config", str(config), "check", str(mbox), "--tree", str(tree), "--json", str(out)],
                   cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    outcome = json.loads(out.read_text())
    return {"seconds": round(seconds, 1), "verdict": outcome["verdict"],
            "culprit": outcome["culprit"] and outcome["culprit"]["index"],
            "attempts": {n: [a["status"] for a in e["attempts"]] for n, e in outcome["entries"].items()},
            "base_attempts": {n: [a["status"] for a in e["base_attempts"]] for n, e in outcome["entries"].items()}}


def hogs(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs-per-core", type=int, default=2)
    parser.add_argument("--json", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    tree = trees.linux()
    results = {}
    with tempfile.TemporaryDirectory(prefix="load-bench-") as scratch:
        scratch = Path(scratch)
        mboxes = {kind: series(tree, scratch / kind, kind == "breaking") for kind in ("harmless", "breaking")}
        check(tree, scratch, "warm-up", mboxes["harmless"])   # the workspace holds these files' build
        for load in ("idle", "loaded"):
            running = hogs(args.hogs_per_core * (os.cpu_count() or 1)) if load == "loaded" else []
            try:
                for kind, mbox in mboxes.items():
                    results[f"{load} {kind}"] = check(tree, scratch, f"{load}-{kind}", mbox)
                    print(f"{load} {kind}: {results[f'{load} {kind}']}", file=sys.stderr, flush=True)
            finally:
                for hog in running:
                    hog.kill()
                    hog.wait()
    print(f"cores: {os.cpu_count()}; hogs when loaded: {args.hogs_per_core} per core")
    print(f"{'run':<18}{'verdict':<12}{'culprit':>8}{'seconds':>9}  boots (series / base)")
    for name, r in results.items():
        boots = "; ".join(f"{n}: {','.join(r['attempts'][n])} / {','.join(r['base_attempts'][n])}" for n in r["attempts"])
        print(f"{name:<18}{r['verdict']:<12}{str(r['culprit']):>8}{r['seconds']:>9.1f}  {boots}")
    same = all(results[f"idle {k}"]["verdict"] == results[f"loaded {k}"]["verdict"]
               and results[f"idle {k}"]["culprit"] == results[f"loaded {k}"]["culprit"] for k in ("harmless", "breaking"))
    print(f"verdicts and culprits the same idle and loaded: {'yes' if same else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
