"""Benchmark bootbot against the bare QEMU floor, and its parallel boots against serial ones.

    .venv/bin/python bench/boot_bench.py [--rounds N] [--tree linux|xen] [--entries a,b,...]
                                         [--file NAME=PATH ...] [--json FILE]

Linux's entries boot the newest stock kernel (or --file bzimage=PATH); Xen's need a built Xen
(--file xen=PATH --file xen_efi=PATH: bench/check_bench.py --tree xen leaves one in its floor),
else they boot the host's.

1. Per entry, `bootbot boot` (a subprocess, wall time) against the identical QEMU command line
   run by hand on files staged once (the floor: no Python, no staging, no console watching).
2. `bootbot boot` of all the entries at once against the sum of the per-entry bootbot medians.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import floor  # noqa: E402  (needs the repo on sys.path first)
from bot import config as configuration, declarations  # noqa: E402

BOOTBOT = REPO / ".venv" / "bin" / "bootbot"
RATIO_GOAL = 1.05            # bootbot at most 5 % above the bare floor
PARALLEL_GOAL = 0.6          # all entries at once at most 60 % of booting them one by one


class BenchError(Exception):
    """A boot failed: timing failing boots means nothing, so the benchmark stops."""


def newest_kernel() -> Path:
    """The newest /boot/vmlinuz-*-amd64, ordered like `sort -V`."""
    def version(path: Path):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]
    kernels = sorted(Path("/boot").glob("vmlinuz-*-amd64"), key=version)
    if not kernels:
        raise BenchError("no /boot/vmlinuz-*-amd64 found; give --file bzimage=PATH")
    return kernels[-1]


def bare_run(entry, directory: Path, config) -> float:
    """Seconds from starting QEMU by hand until it exits by itself (the guest powers off)."""
    floor.fresh_writable(entry, directory, config)
    try:
        seconds = floor.until_exit(floor.command(entry, config), directory, entry.timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"bare {entry.name}: QEMU still running after {entry.timeout:g} s") from None
    text = (directory / "console.log").read_text(errors="replace")
    if not entry.success_pattern(floor.NONCE).search(text):
        tail = "\n".join(text.splitlines()[-15:])
        raise BenchError(f"bare {entry.name}: no success line; console ends:\n{tail}")
    return seconds


def bootbot_run(args, names: list[str]) -> float:
    """Wall seconds of one `bootbot boot` process, as a user would see them."""
    files = [arg for name, path in args.files.items() for arg in (f"--{name.replace('_', '-')}", str(path))]
    command = [str(BOOTBOT), "boot", "--tree", args.tree, *files, "--entries", ",".join(names), "--accel", "tcg"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise BenchError(f"bootbot --entries {','.join(names)} exited {done.returncode}:\n"
                         f"{done.stdout}{done.stderr}")
    return seconds


def measure(args, entries, config, stage: Path) -> dict:
    """Runs the rounds. Bootbot and bare alternate, and which goes first swaps each round,
    so that a noisy stretch of the shared machine falls on both sides."""
    samples = {name: {"bootbot": [], "bare": []} for name in args.entries}
    parallel = []
    bootbot_run(args, args.entries)   # untimed: bootbot derives its cached files (vmlinux ...) once
    for round_ in range(args.rounds):
        for name in args.entries:
            runs = [("bootbot", lambda: bootbot_run(args, [name])),
                    ("bare", lambda: bare_run(entries[name], stage / name, config))]
            for kind, run in runs if round_ % 2 == 0 else runs[::-1]:
                samples[name][kind].append(run())
        parallel.append(bootbot_run(args, args.entries))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return {"entries": samples, "parallel": parallel}


def summarize(samples: dict) -> dict:
    per_entry = {}
    for name, s in samples["entries"].items():
        ratios = [a / b for a, b in zip(s["bootbot"], s["bare"])]   # paired within a round
        per_entry[name] = {"bootbot": statistics.median(s["bootbot"]), "bare": statistics.median(s["bare"]),
                           "ratio": statistics.median(ratios), "ratios": ratios}
    serial = sum(e["bootbot"] for e in per_entry.values())
    parallel = statistics.median(samples["parallel"])
    return {"per_entry": per_entry, "serial_sum": serial, "parallel": parallel, "parallel_ratio": parallel / serial}


def qemu_version(qemu: str) -> str:
    return subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def report(args, header: dict, summary: dict) -> str:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"
    lines = [f"cores: {header['cores']}", f"qemu: {header['qemu']} (accel tcg)", f"tree: {header['tree']}",
             f"files: {header['files']}", f"rounds: {header['rounds']}", "",
             f"{'entry':<12} {'bootbot s':>9} {'bare s':>7} {'ratio':>6}  per-round ratios  goal <= {RATIO_GOAL}"]
    for name, e in summary["per_entry"].items():
        rounds = " ".join(f"{r:.3f}" for r in e["ratios"])
        lines.append(f"{name:<12} {e['bootbot']:>9.2f} {e['bare']:>7.2f} {e['ratio']:>6.3f}  {rounds:<16}  "
                     f"{verdict(e['ratio'] <= RATIO_GOAL)}")
    lines += ["", f"parallel ({','.join(args.entries)}): median {summary['parallel']:.2f} s; "
                  f"serial sum {summary['serial_sum']:.2f} s; ratio {summary['parallel_ratio']:.3f}; "
                  f"goal <= {PARALLEL_GOAL}: {verdict(summary['parallel_ratio'] <= PARALLEL_GOAL)}"]
    return "\n".join(lines)


def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", default="linux", help="whose entries (default: linux)")
    parser.add_argument("--entries", help="default: bios,efi,pvh,xen-pv for linux, all of another tree's")
    parser.add_argument("--file", action="append", default=[], metavar="NAME=PATH",
                        help="a file to boot, by its name in the entries (Linux: bzimage is the newest stock kernel)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every sample as JSON")
    args = parser.parse_args(argv)
    args.files = dict(f.split("=", 1) for f in args.file)
    args.entries = [n.strip() for n in (args.entries or "").split(",") if n.strip()]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    config = configuration.load()
    entries = declarations.load(config.path("checks", "dir")).trees[args.tree].entries
    args.entries = args.entries or (["bios", "efi", "pvh", "xen-pv"] if args.tree == "linux" else list(entries))
    unknown = [n for n in args.entries if n not in entries]
    if unknown:
        print(f"boot_bench: unknown entry {', '.join(unknown)}; known: {', '.join(entries)}", file=sys.stderr)
        return 2
    try:
        if args.tree == "linux":
            args.files.setdefault("bzimage", str(newest_kernel()))
        args.files = {name: Path(path) for name, path in args.files.items()}
        header = {"cores": os.cpu_count(), "qemu": qemu_version(config.get("lab", "qemu")), "tree": args.tree,
                  "files": " ".join(f"{n}={p}" for n, p in args.files.items()), "rounds": args.rounds}
        with tempfile.TemporaryDirectory(prefix="boot-bench-") as scratch:
            floor.stage([entries[n] for n in args.entries], args.files, config, Path(scratch))
            samples = measure(args, entries, config, Path(scratch))
    except BenchError as e:
        print(f"boot_bench: aborted: {e}", file=sys.stderr)
        return 1
    summary = summarize(samples)
    print(report(args, header, summary))
    if args.json:
        args.json.write_text(json.dumps({**header, "samples": samples, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
