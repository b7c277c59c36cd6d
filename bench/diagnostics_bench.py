"""What QEMU's diagnostics cost a passing boot: the bare boot against the same with the QMP socket
(on in every boot: the registers of a hung one) and with QMP and the exception log as well
(-d int,cpu_reset through bootbot's FIFO reader: on in the retries of a failed boot).

    .venv/bin/python bench/diagnostics_bench.py [--rounds N] [--tree linux|xen] [--entries a,b,...]
                                                [--file NAME=PATH ...]

The files as bench/boot_bench.py takes them (Linux: the newest stock kernel by default).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import boot_bench  # noqa: E402
import floor  # noqa: E402
from bot import config as configuration, declarations  # noqa: E402
from bot.boots.diagnostics import Diagnostics  # noqa: E402

KINDS = {"bare": None, "qmp": False, "qmp+exceptions": True}   # kind: Diagnostics(exceptions=) or none


def one(entry, directory: Path, config, exceptions: bool | None) -> float:
    """Seconds of a boot that passes."""
    floor.fresh_writable(entry, directory, config)
    argv = floor.command(entry, config)
    if exceptions is None:
        seconds = floor.until_exit(argv, directory, entry.timeout)
    else:   # as bootbot runs it, QMP followed: the guest's power-off pauses QEMU, which is then told to quit
        with Diagnostics(directory, exceptions) as diagnostics, (directory / "console.log").open("wb") as out:
            started = time.monotonic()
            qemu = subprocess.Popen(argv + diagnostics.args(), cwd=directory, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
            diagnostics.watch(qemu)
            qemu.wait(entry.timeout)
            seconds = time.monotonic() - started
    if not entry.success_pattern(floor.NONCE).search((directory / "console.log").read_text(errors="replace")):
        raise boot_bench.BenchError(f"{entry.name} ({exceptions=}) did not pass")
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = boot_bench.parse(argv)
    config = configuration.load()
    entries = declarations.load(config.path("checks", "dir")).trees[args.tree].entries
    args.entries = args.entries or (["bios", "efi", "pvh", "xen-pv"] if args.tree == "linux" else list(entries))
    if args.tree == "linux":
        args.files.setdefault("bzimage", str(boot_bench.newest_kernel()))
    args.files = {name: Path(path) for name, path in args.files.items()}
    samples = {name: {kind: [] for kind in KINDS} for name in args.entries}
    with tempfile.TemporaryDirectory(prefix="diagnostics-bench-") as scratch:
        floor.stage([entries[n] for n in args.entries], args.files, config, Path(scratch))
        for round_ in range(args.rounds):
            for name in args.entries:
                order = list(KINDS.items())
                for kind, exceptions in order[round_ % len(order):] + order[:round_ % len(order)]:
                    samples[name][kind].append(one(entries[name], Path(scratch) / name, config, exceptions))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"rounds: {args.rounds}; files: {' '.join(f'{n}={p}' for n, p in args.files.items())}")
    print(f"{'entry':<12} {'bare s':>7} {'qmp':>6} {'qmp+exceptions':>15}   (ratios of medians to bare)")
    for name, s in samples.items():
        bare = statistics.median(s["bare"])
        print(f"{name:<12} {bare:>7.2f} {statistics.median(s['qmp']) / bare:>6.3f} "
              f"{statistics.median(s['qmp+exceptions']) / bare:>15.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
