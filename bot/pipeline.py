"""The check of one series: apply, build, boot what it touches, compare with the base, and
name the patch that broke an entry."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from bot import build as kbuild
from bot import guard, workspace
from bot.series import Patch, Series
from checks import entry as entry_module
from checks import runner
from checks.console import ERROR, PASS, PATTERNS_FILE
from checks.entry import Entry
from checks.runner import BootResult, Lab
from checks.sandbox import Limits as BuildLimits
from checks.sandbox import Sandbox

SKIP, REGRESSION, APPLY_FAILED, BUILD_FAILED, REFUSED = "skip", "regression", "apply-failed", "build-failed", "refused"


@dataclass(frozen=True)
class Settings:
    tree: Path
    branch: str
    state: Path
    workspaces: Path
    fragment: Path
    lab: Lab
    lab_files: dict[str, Path]       # firmware and hypervisor, by placeholder name
    limits: guard.Limits
    build_limits: BuildLimits
    strict_experimental: bool
    make_jobs: int
    slots: int


@dataclass
class EntryOutcome:
    status: str
    baseline: str
    seconds: float
    reason: str
    log: str
    experimental: bool


@dataclass
class Outcome:
    verdict: str
    series: Series
    entries: dict[str, EntryOutcome] = field(default_factory=dict)
    culprit: Patch | None = None
    regressed: list[str] = field(default_factory=list)   # entries that boot on the base, not with the series
    detail: list[str] = field(default_factory=list)   # why it did not apply, build or run
    base: str | None = None
    builds: list[dict] = field(default_factory=list)   # each kernel built: commit, ok, seconds, limit


Progress = Callable[[str], None]


class LabFailed(Exception):
    """A boot ended in a lab error while finding the culprit: no patch can be blamed."""


class BaseBroken(Exception):
    """The base does not build: nothing can be said about the series."""

    def __init__(self, built: kbuild.Build):
        super().__init__("the base tree does not build")
        self.errors = built.errors
        self.log = built.log


def lab(config, accel: str | None = None) -> Lab:
    return Lab(qemu=config.get("lab", "qemu"), busybox=config.path("lab", "busybox"),
               accel=accel or config.get("boot", "accel"),
               probe_seconds=config.get("boot", "kvm_probe_seconds"),
               jobs=config.get("boot", "jobs") or os.cpu_count() or 1, state=config.path("state", "dir"),
               sandbox=Sandbox(config.get("sandbox", "uid")))


def lab_files(config) -> dict[str, Path]:
    return {name: config.path("lab", name) for name in ("xen", "ovmf_code", "ovmf_vars")}


def settings(config, tree: Path, accel: str | None = None) -> Settings:
    return Settings(
        tree=tree.resolve(), branch=config.get("tree", "branch"), state=config.path("state", "dir"),
        workspaces=config.path("build", "dir"), fragment=config.path("build", "fragment"),
        lab=lab(config, accel), lab_files=lab_files(config),
        strict_experimental=config.get("boot", "strict_experimental"),
        make_jobs=config.get("build", "jobs") or os.cpu_count() or 1, slots=config.get("build", "workspaces"),
        limits=guard.Limits(**{key: config.get("limits", key) for key in guard.Limits.__dataclass_fields__}),
        build_limits=BuildLimits(**{key: config.get("sandbox", key) for key in BuildLimits.__dataclass_fields__}))


def affected(files: list[str]) -> list[Entry]:
    return [e for e in entry_module.load().values() if any(e.covers(f) for f in files)]


def check(series: Series, settings: Settings, progress: Progress = lambda message: None,
          only: list[str] | None = None) -> Outcome:
    """Checks `series`; `only` narrows the entries it touches to those named (a retest)."""
    refused = guard.refusal(series, settings.limits)
    if refused:
        return Outcome(REFUSED, series, detail=[refused])
    entries = [e for e in affected(series.files) if not only or e.name in only]
    if not entries:
        return Outcome(SKIP, series, detail=["the series touches no boot path"])
    base = workspace.resolve_base(settings.tree, series.base_commit, settings.branch)
    with workspace.acquire(settings.tree, settings.workspaces, settings.slots) as ws:
        builder = Builder(ws, settings, progress)
        outcome = _check(series, entries, base, builder, settings, progress)
        outcome.builds = builder.made
        return outcome


@dataclass
class Builder:
    """Builds commits in one workspace, confined, and keeps a record of each build."""
    ws: workspace.Workspace
    settings: Settings
    progress: Progress
    made: list[dict] = field(default_factory=list)

    def at(self, commit: str, what: str) -> kbuild.Build:
        self.progress(f"building {what} ({commit[:12]})")
        self.ws.checkout(commit)
        # A uid per workspace: the process limit counts per uid, so builds at once do not share it.
        sandbox = Sandbox(self.settings.lab.sandbox.uid + 1 + self.ws.slot, self.settings.build_limits)
        built = kbuild.build(self.ws.source, self.ws.build, self.settings.fragment, self.settings.make_jobs,
                             sandbox, self.progress)
        self.made.append({"commit": commit, "ok": built.ok, "seconds": built.seconds, "limit": built.limit})
        if not built.ok:   # the workspace's log is rewritten by its next build: keep this one
            kept = self.settings.state / "logs" / f"build-{commit[:12]}.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(built.log, kept)
            built.log = kept
        return built


def _check(series, entries, base, builder, settings, progress) -> Outcome:
    progress(f"applying {len(series.patches)} patches on {base[:12]}")
    builder.ws.checkout(base)
    try:
        commits = builder.ws.apply(series.am_mbox)
    except workspace.ApplyFailed as e:
        return Outcome(APPLY_FAILED, series, culprit=series.patches[e.index - 1],
                       detail=e.message.splitlines(), base=base)
    try:
        baseline = _baseline(builder, base, entries, settings, progress)
    except BaseBroken as e:
        return Outcome(ERROR, series, detail=[str(e), *e.errors, f"full log: {e.log}"], base=base)
    built = builder.at(commits[-1], "the series")
    if not built.ok:
        progress("finding the patch that broke the build")
        culprit = _first_bad(len(commits), lambda k: not builder.at(commits[k - 1], f"patches 1-{k}").ok)
        return Outcome(BUILD_FAILED, series, culprit=series.patches[culprit - 1],
                       detail=[*built.errors, f"full log: {built.log}"], base=base)
    results = _boot(built, entries, settings, progress, "with the series")
    outcome = Outcome(PASS, series, base=base, entries={
        r.entry: EntryOutcome(r.status, baseline[r.entry]["status"], r.seconds, r.reason, r.log, r.experimental)
        for r in results})
    if any(e.status == ERROR or e.baseline == ERROR for e in outcome.entries.values() if not e.experimental):
        outcome.verdict = ERROR
        outcome.detail = ["the lab failed (not the series): see the entries in error"]
        return outcome
    regressed = [e for e in entries if _regressed(outcome.entries[e.name], settings.strict_experimental)]
    if regressed:
        progress(f"finding the patch that broke {', '.join(e.name for e in regressed)}")
        try:
            culprit = _first_bad(len(commits), lambda k: _prefix_breaks(builder, commits, k, regressed, settings, progress))
        except LabFailed as e:
            outcome.verdict, outcome.detail = ERROR, [str(e)]
            return outcome
        outcome.verdict, outcome.culprit = REGRESSION, series.patches[culprit - 1]
        outcome.regressed = [e.name for e in regressed]
    return outcome


def _regressed(result: EntryOutcome, strict_experimental: bool) -> bool:
    return result.baseline == PASS and runner.counts_as_failure(result, strict_experimental)


def _first_bad(count: int, breaks: Callable[[int], bool]) -> int:
    """The first prefix length (1..count) that breaks, knowing the base works and all `count`
    patches break: a binary search, so a 3-patch series costs at most 2 more builds."""
    good, bad = 0, count
    while bad - good > 1:
        middle = (good + bad) // 2
        if breaks(middle):
            bad = middle
        else:
            good = middle
    return bad


def _prefix_breaks(builder: Builder, commits: list[str], index: int, entries: list[Entry],
                   settings: Settings, progress: Progress) -> bool:
    commit = commits[index - 1]
    built = builder.at(commit, f"patches 1-{index}")
    if not built.ok:
        return True
    results = _boot(built, entries, settings, progress, f"with patches 1-{index}")
    failed = [r for r in results if r.status == ERROR]
    if failed:
        raise LabFailed(f"the lab failed while finding the culprit ({failed[0].entry}: {failed[0].reason})")
    return any(r.status != PASS for r in results)


def _boot(built: kbuild.Build, entries: list[Entry], settings: Settings, progress: Progress,
          which: str) -> list[BootResult]:
    progress(f"booting {', '.join(e.name for e in entries)} {which}")
    given = {**settings.lab_files, "bzimage": built.bzimage, "vmlinux": built.vmlinux}
    return runner.boot(entries, given, settings.lab,
                       progress=lambda name, result: result and progress(result.progress_line()))


def _lab_identity(settings: Settings) -> str:
    """What the base's results also depend on: QEMU, firmware, Xen and the accelerator setting.
    Files are known by size and mtime, so an upgrade of any of them boots the base again."""
    files = [shutil.which(settings.lab.qemu) or settings.lab.qemu, *map(str, settings.lab_files.values())]
    stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) if os.path.exists(f) else (f,) for f in files]
    return repr((stats, settings.lab.accel))


def _baseline(builder: Builder, base: str, entries: list[Entry], settings: Settings, progress: Progress) -> dict:
    """The base's results for `entries`, booted once per base commit and declarations."""
    declarations = b"".join(p.read_bytes() for p in (settings.fragment, entry_module.ENTRIES_FILE, PATTERNS_FILE))
    key = hashlib.sha256(declarations + _lab_identity(settings).encode()).hexdigest()[:16]
    cache = settings.state / "cache" / "baseline" / f"{base}-{key}.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    missing = [e for e in entries if e.name not in known]
    if missing:
        built = builder.at(base, "the base")
        if not built.ok:
            raise BaseBroken(built)
        for result in _boot(built, missing, settings, progress, "on the base"):
            if result.status != ERROR:   # a lab failure says nothing about the base
                known[result.entry] = asdict(result)
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial")
        partial.write_text(json.dumps(known, indent=1))
        partial.rename(cache)
    return {e.name: known.get(e.name, {"status": ERROR}) for e in entries}
