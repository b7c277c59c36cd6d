"""Benchmark `bootbot check` against the same work done by hand, in the same run.

    .venv/bin/python bench/check_bench.py [--tree linux|xen] [--rounds N] [--json FILE]

1. A warm `bootbot check` of a two-patch series (Linux: comments in the decompressor's misc.c;
   Xen: in head.S) against its floor: `git checkout`, `git am -3`, the incremental build steps of
   the tree's declaration, the per-run boot files made again (Xen's GRUB image, EFI partition,
   nested dom0) and the same QEMU boots (as many at once as bootbot runs), by hand, in a worktree
   and build folder of their own.
2. The floor's incremental rebuilds against one clean build of the same configuration.
3. What naming the culprit costs: builds (as bootbot records them) and wall time of a check of a
   three-patch series whose middle patch breaks an entry (Linux: pvh; Xen: xen-mb2-bios), against
   the same series without that patch.

Both workspaces live in <tree>/../bench-workspaces and are kept, so only the first run on a
machine builds from scratch; the state folder (results, baseline cache) is private to each run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

import floor  # noqa: E402  bench/floor.py: the same boots by hand
import trees  # noqa: E402  tests/trees.py: the Linux tree, and series made with git plumbing
from bot import config as configuration, declarations  # noqa: E402

BOOTBOT = REPO / ".venv" / "bin" / "bootbot"


@dataclass(frozen=True)
class Profile:
    """What the benchmark changes in one tree kind: where its rounds' harmless comments go (the
    first place; the warm-up comments all, so that every entry's base is cached), and the
    patch that breaks `broken` (a file, its line, what replaces it)."""
    tree: Callable[[], Path]
    comments: tuple[tuple[str, str], ...]   # (file, the line a comment follows)
    breaking: tuple[str, str, str]
    broken: str


PVH_START = "SYM_CODE_START_LOCAL(pvh_start_xen)\n\tUNWIND_HINT_EMPTY\n"
PROFILES = {
    "linux": Profile(trees.linux, (("arch/x86/boot/compressed/misc.c", '#include "misc.h"\n'),
                                   ("arch/x86/platform/pvh/enlighten.c", "#include <xen/interface/hvm/start_info.h>\n")),
                     ("arch/x86/platform/pvh/head.S", PVH_START, PVH_START + "\tud2\n"), "pvh"),
    "xen": Profile(trees.xen, (("xen/arch/x86/boot/head.S", "__start:\n"),
                               ("xen/arch/x86/efi/efi-boot.h", "static void __init efi_arch_relocate_image(unsigned long delta)\n{\n")),
                   ("xen/arch/x86/boot/head.S", "        je      trampoline_bios_setup\n", "        je      not_multiboot\n"),
                   "xen-mb2-bios"),
}
RATIO_GOAL, SECONDS_GOAL, REBUILD_GOAL, EXTRA_BUILDS_GOAL = 1.5, 30.0, 0.10, 2
COMMITTER = {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
BASELINE_CHOICE = ("bootbot's base results kept warm (cached by a warm-up check), so the floor boots only "
                   "the series: the steady state of a bot checking many series on one base")

class BenchError(Exception):
    """A step failed: timing failed work means nothing, so the benchmark stops."""


@dataclass
class Bench:
    tree: Path
    scratch: Path      # per run: the config, state, series, floor boot folders
    root: Path         # kept: bootbot's workspace and the floor's
    config: configuration.Config
    jobs: int
    declared: declarations.Declarations
    kind: str          # the tree kind: linux, xen
    accel: str = "tcg"

    @property
    def profile(self) -> Profile:
        return PROFILES[self.kind]

    @property
    def config_file(self) -> Path:
        return self.scratch / "bootbot.toml"

    @property
    def floor_src(self) -> Path:
        return self.root / f"floor-{self.kind}" / "src"

    @property
    def floor_out(self) -> Path:
        return self.root / f"floor-{self.kind}" / "build"


def run(command: list, cwd: Path, what: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise BenchError(f"{what} exited {done.returncode}:\n{(done.stdout + done.stderr)[-1500:]}")
    return done


def git(cwd: Path, *args) -> None:
    run(["git", *args], cwd, f"git {args[0]}", env={**os.environ, **COMMITTER})


def steps(bench: Bench, which: str, src: Path, out: Path) -> None:
    """The Linux declaration's configure or build steps, by hand: with no sandbox, as one would
    at a desk."""
    tree = bench.declared.trees[bench.kind]
    values = {"source": str(src), "out": str(out), "jobs": str(bench.jobs), "fragment": str(tree.fragment)}
    for step in getattr(tree, which):
        argv = tree.argv(step, values)
        run(argv, Path(step.cwd.format(**values)) if step.cwd else src, f"{argv[0]} {argv[-1]} in {out}")


# --- series ---------------------------------------------------------------------------------

def comment(anchor: str, text: str):
    return trees.add_after(anchor, f"/* check_bench: {text} */\n")


def series(bench: Bench, name: str, patches) -> tuple[Path, Path]:
    """The mbox bootbot reads and, for the floor's `git am`, the same patches without the cover
    letter (b4 drops it for bootbot; git am would stop at it as an empty patch)."""
    out = bench.scratch / name
    mbox = trees.make_series(bench.tree, out, patches)
    am = out / "am.mbox"
    am.write_bytes(b"".join(p.read_bytes() for p in sorted((out / "patches").glob("*.patch"))
                            if "cover-letter" not in p.name))
    return mbox, am


def round_series(bench: Bench, round_: int) -> tuple[Path, Path]:
    """Two harmless comments, different each round so that each round rebuilds."""
    path, anchor = bench.profile.comments[0]
    return series(bench, f"round-{round_}", [
        (f"x86/boot: comment (round {round_})", {path: comment(anchor, f"round {round_} a")}),
        (f"x86/boot: comment again (round {round_})", {path: comment(anchor, f"round {round_} b")})])


def culprit_series(bench: Bench, breaking: bool) -> Path:
    """A comment, the breaking patch, another comment; or the same without the breaking patch."""
    (path, anchor), (broken, line, instead) = bench.profile.comments[0], bench.profile.breaking
    patches = [("x86/boot: comment", {path: comment(anchor, "1")}),
               *([("x86/boot: break " + bench.profile.broken, {broken: trees.replace(line, instead)})] if breaking else []),
               ("x86/boot: comment again", {path: comment(anchor, "2")})]
    return series(bench, f"culprit-{'bad' if breaking else 'good'}", patches)[0]


# --- bootbot --------------------------------------------------------------------------------

def bootbot_check(bench: Bench, mbox: Path, verdict: str) -> dict:
    """Wall seconds of one `bootbot check` process, and the bzImage builds it ran."""
    outcome = mbox.with_suffix(".json")
    command = [BOOTBOT, "--config", bench.config_file, "check", mbox, "--tree", bench.tree, "--json", outcome]
    started = time.monotonic()
    done = subprocess.run([str(c) for c in command], cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    result = json.loads(outcome.read_text()) if outcome.exists() else {}
    if result.get("verdict") != verdict:
        raise BenchError(f"bootbot check {mbox.parent.name}: expected {verdict}, exited {done.returncode}:\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    builds = result["builds"]   # bootbot's record of the kernels it built, each with its phase
    return {"seconds": seconds, "builds": len(builds), "make": sum(b["seconds"] for b in builds),
            "search_builds": sum(b["phase"].startswith("patches-") for b in builds), "result": result}


def bootbot_accel(result: dict) -> str:
    """The accelerator bootbot chose (auto probes KVM), so that the floor boots the same way."""
    return next(iter(result["entries"].values()))["accel"]


# --- the floor ------------------------------------------------------------------------------

def floor_setup(bench: Bench) -> dict:
    """The floor's worktree and O= folder, made once and built at master."""
    configured = bench.floor_out / ".bench-configured"
    cold = not configured.exists()
    if not (bench.floor_src / ".git").exists():
        git(bench.tree, "worktree", "prune")
        git(bench.tree, "worktree", "add", "--detach", bench.floor_src, "master")
    subprocess.run(["git", "am", "--abort"], cwd=bench.floor_src, capture_output=True)   # a run stopped mid-am
    git(bench.floor_src, "checkout", "--detach", "--force", "master")
    bench.floor_out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if cold:
        steps(bench, "configure", bench.floor_src, bench.floor_out)
        configured.touch()
    steps(bench, "build", bench.floor_src, bench.floor_out)
    return {"cold": cold, "seconds": time.monotonic() - started}


def stage_floor(bench: Bench, entries) -> None:
    """What the floor boots, staged again after each build: the files made from the build
    (Xen's GRUB image, EFI partition, nested dom0) are made again, as one would by hand."""
    artifacts = bench.declared.trees[bench.kind].artifacts
    floor.stage(entries, {name: bench.floor_out / path for name, path in artifacts.items()}, bench.config,
                bench.scratch / "floor-boots")


def floor_boot(bench: Bench, entry) -> float:
    directory = bench.scratch / "floor-boots" / entry.name
    floor.fresh_writable(entry, directory, bench.config)
    started = time.monotonic()
    if not floor.watch(floor.command(entry, bench.config, bench.accel), directory,
                       entry.success_pattern(floor.NONCE), entry.timeout):
        tail = "\n".join((directory / "console.log").read_text(errors="replace").splitlines()[-15:])
        raise BenchError(f"floor {entry.name}: no success line; console ends:\n{tail}")
    return time.monotonic() - started


def floor_check(bench: Bench, am_mbox: Path, entries) -> dict:
    """bootbot's work on a warm baseline, by hand: apply, build, boot the affected entries."""
    started = time.monotonic()
    git(bench.floor_src, "checkout", "--detach", "master")
    git(bench.floor_src, "am", "-3", am_mbox)
    applied = time.monotonic()
    steps(bench, "build", bench.floor_src, bench.floor_out)
    built = time.monotonic()
    stage_floor(bench, entries)
    longest_first = sorted(entries, key=lambda e: -e.typical_seconds)   # bootbot's order too
    with ThreadPoolExecutor(max_workers=bench.jobs) as pool:
        list(pool.map(lambda entry: floor_boot(bench, entry), longest_first))
    done = time.monotonic()
    return {"seconds": done - started, "apply": applied - started, "build": built - applied, "boot": done - built}


def clean_build(bench: Bench) -> dict:
    """One build of the same configuration in a fresh O= folder (configure, then make)."""
    out = bench.root / "clean-build"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    git(bench.floor_src, "checkout", "--detach", "master")
    started = time.monotonic()
    steps(bench, "configure", bench.floor_src, out)
    configured = time.monotonic()
    steps(bench, "build", bench.floor_src, out)
    done = time.monotonic()
    shutil.rmtree(out)
    return {"seconds": done - started, "configure": configured - started, "make": done - configured}


# --- the run --------------------------------------------------------------------------------

def prepare(bench: Bench) -> None:
    """The private --config file in the scratch folder."""
    (bench.scratch / "state").mkdir()
    bench.config_file.write_text(f'[state]\ndir = "{bench.scratch / "state"}"\n[build]\ndir = "{bench.root}"\n')


def warm_up(bench: Bench) -> dict:
    """A check touching every entry's paths: builds bootbot's workspace (cold the first time on a
    machine), caches the base's results for every entry and the KVM probe's answer."""
    cold = not any(bench.root.glob("*/*/build/.bootbot-configured"))   # bootbot's: <hash>/<slot>/build
    mbox, _ = series(bench, "warm-up", [(f"x86: comment {path}", {path: comment(anchor, "warm-up")})
                                        for path, anchor in bench.profile.comments])
    result = bootbot_check(bench, mbox, "pass")
    bench.accel = bootbot_accel(result["result"])
    return {"cold": cold, "seconds": result["seconds"], "builds": result["builds"]}


def settle(bench: Bench, entries) -> None:
    """An untimed round 0 on both sides: the warm-up touched more, and the floor starts at
    master, so without it round 1 would rebuild more for bootbot than for the floor."""
    mbox, am = round_series(bench, 0)
    bootbot_check(bench, mbox, "pass")
    floor_check(bench, am, entries)


def rounds(bench: Bench, count: int, entries) -> list[dict]:
    """bootbot and the floor alternate, and which goes first swaps each round, so that a noisy
    stretch of the shared machine falls on both sides."""
    settle(bench, entries)
    samples = []
    for round_ in range(1, count + 1):
        mbox, am = round_series(bench, round_)
        runs = [("bootbot", lambda: bootbot_check(bench, mbox, "pass")), ("floor", lambda: floor_check(bench, am, entries))]
        runs = runs if round_ % 2 else runs[::-1]
        sample = {"first": runs[0][0]}
        for kind, measure in runs:
            sample[kind] = measure()
            sample[kind].pop("result", None)
        samples.append(sample)
        print(f"round {round_}/{count}: bootbot {sample['bootbot']['seconds']:.1f} s, "
              f"floor {sample['floor']['seconds']:.1f} s", file=sys.stderr, flush=True)
    return samples


def culprit_cost(bench: Bench) -> dict:
    """The series without its breaking patch first: it also caches nothing new, the warm-up did."""
    good = bootbot_check(bench, culprit_series(bench, False), "pass")
    bad = bootbot_check(bench, culprit_series(bench, True), "regression")
    culprit = bad.pop("result")["culprit"]
    good.pop("result")
    if not culprit or culprit["index"] != 2:
        raise BenchError(f"bootbot named {culprit} as the culprit, not patch 2")
    return {"good": good, "bad": bad, "extra_builds": bad["builds"] - good["builds"],
            "search_builds": bad["search_builds"]}


def summarize(samples: list[dict], clean: dict, culprit: dict) -> dict:
    median = statistics.median
    ratios = [s["bootbot"]["seconds"] / s["floor"]["seconds"] for s in samples]   # paired within a round
    rebuild = median(s["floor"]["build"] for s in samples)
    return {"bootbot": median(s["bootbot"]["seconds"] for s in samples),
            "floor": median(s["floor"]["seconds"] for s in samples), "ratio": median(ratios), "ratios": ratios,
            "rebuild": rebuild, "rebuild_ratio": rebuild / clean["seconds"],
            "culprit_seconds": culprit["bad"]["seconds"] - culprit["good"]["seconds"]}


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(header: dict, warm: dict, floor: dict, samples: list[dict], clean: dict, culprit: dict, summary: dict) -> str:
    lines = [f"{key}: {', '.join(value) if isinstance(value, list) else value}" for key, value in header.items()] + [
        f"bootbot workspace: {'COLD' if warm['cold'] else 'warm'} at start; warm-up check {warm['seconds']:.1f} s "
        f"({warm['builds']} builds, base boots of every entry, KVM probe)",
        f"floor workspace: {'COLD' if floor['cold'] else 'warm'} at start; set-up build {floor['seconds']:.1f} s",
        f"baseline: {BASELINE_CHOICE}", "",
        f"1. warm check of a 2-patch series touching {header['touched']} (entries {', '.join(header['entries'])})",
        f"{'round':<6}{'first':<8}{'bootbot s':>10}{'(make)':>8}{'builds':>7}{'floor s':>9}"
        f"{'(am':>6}{'make':>7}{'boots)':>8}{'ratio':>7}"]
    for n, (s, ratio) in enumerate(zip(samples, summary["ratios"]), 1):
        b, f = s["bootbot"], s["floor"]
        lines.append(f"{n:<6}{s['first']:<8}{b['seconds']:>10.1f}{b['make']:>8.1f}{b['builds']:>7}{f['seconds']:>9.1f}"
                     f"{f['apply']:>6.1f}{f['build']:>7.1f}{f['boot']:>8.1f}{ratio:>7.3f}")
    lines += [f"median: bootbot {summary['bootbot']:.1f} s, floor {summary['floor']:.1f} s, ratio {summary['ratio']:.3f}",
              f"goal ratio <= {RATIO_GOAL}: {met(summary['ratio'] <= RATIO_GOAL)}; "
              f"goal bootbot < {SECONDS_GOAL:g} s: {met(summary['bootbot'] < SECONDS_GOAL)}", "",
              f"2. incremental rebuild (floor make, median) {summary['rebuild']:.1f} s; clean build {clean['seconds']:.1f} s "
              f"(configure {clean['configure']:.1f} + make {clean['make']:.1f}); ratio {summary['rebuild_ratio']:.3f}; "
              f"goal <= {REBUILD_GOAL}: {met(summary['rebuild_ratio'] <= REBUILD_GOAL)}", "",
              f"3. culprit in a 3-patch series whose patch 2 breaks {header['broken']}"]
    for name, label in (("good", "without the breaking patch (2 patches)"), ("bad", "with it, culprit patch 2 found")):
        c = culprit[name]
        lines.append(f"  {label}: {c['seconds']:.1f} s, {c['builds']} builds ({c['make']:.1f} s of building)")
    search = culprit["search_builds"]
    lines += [f"  extra: {culprit['extra_builds']} builds, {summary['culprit_seconds']:.1f} s: {search} for the search, "
              f"{culprit['extra_builds'] - search} to boot the cached base again before the failure counts "
              "(the base, then the series again)",
              f"  theory: a binary search over 3 patches needs at most 2 builds; goal <= {EXTRA_BUILDS_GOAL}: "
              f"{met(search <= EXTRA_BUILDS_GOAL)}"]
    return "\n".join(lines)


def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", choices=list(PROFILES), default="linux", help="the tree kind (default: linux)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every sample as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    profile = PROFILES[args.tree]
    tree = profile.tree()
    config = configuration.load()
    declared = declarations.load(config.path("checks", "dir"))
    entries = declared.select([profile.comments[0][0]], kind=args.tree).entries
    qemu = subprocess.run([config.get("lab", "qemu"), "--version"], capture_output=True, text=True).stdout
    header = {"cores": os.cpu_count(), "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
              "qemu": qemu.splitlines()[0], "tree": f"{tree} (master)", "rounds": args.rounds,
              "touched": profile.comments[0][0], "broken": profile.broken, "entries": [e.name for e in entries]}
    try:
        with tempfile.TemporaryDirectory(prefix="check-bench-") as scratch:
            bench = Bench(tree, Path(scratch), tree.parent / "bench-workspaces", config, os.cpu_count() or 1, declared,
                          args.tree)
            prepare(bench)
            warm = warm_up(bench)
            header["accel"] = bench.accel
            floor = floor_setup(bench)
            samples = rounds(bench, args.rounds, entries)
            culprit = culprit_cost(bench)
            clean = clean_build(bench)
    except BenchError as e:
        print(f"check_bench: aborted: {e}", file=sys.stderr)
        return 1
    header["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    summary = summarize(samples, clean, culprit)
    print(report(header, warm, floor, samples, clean, culprit, summary))
    if args.json:
        args.json.write_text(json.dumps({**header, "warm_up": warm, "floor_setup": floor, "samples": samples,
                                         "clean": clean, "culprit": culprit, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
