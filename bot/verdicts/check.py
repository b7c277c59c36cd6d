"""The check of one series: refuse or route it, apply it, build, boot what it touches, compare with
the base, and name the patch that broke an entry. The work is done by parts (Parts: a workspace
to apply and build in, a lab to boot in), so that every verdict can be tested on recorded results."""
from __future__ import annotations

import hashlib
import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from bot.boots import runner
from bot.boots.entry import Entry
from bot.boots.runner import BootResult
from bot.changes import guard
from bot.changes.series import Series
from bot.reports import result
from bot.reports.result import BuildRecord, EntryOutcome, Outcome
from bot.settings import Settings
from bot.trees import workspace
from bot.trees.build import Build
from bot.trees.tree import Tree
from bot.verdicts.words import APPLY_FAILED, BUILD_FAILED, ERROR, PASS, REFUSED, REGRESSION, SKIP, regressed
from bot.verdicts.workbench import Workbench

Progress = Callable[[str], None]


class Parts(Protocol):
    """What a check needs done; every build and boot it writes into the check's result folder."""
    identity: str   # what the base's results depend on besides the base and the declarations

    def apply(self, base: str, mbox: bytes) -> list[str]:
        """Applies the series on `base`: its commits, in order; ApplyFailed naming a patch."""

    def build(self, commit: str, phase: str) -> Build:
        """Builds `commit`, keeping its log in the folder (Build.log: its path there)."""

    def boot(self, built: Build, entries: list[Entry], phase: str) -> list[BootResult]:
        """Boots `entries` of a build, into boots/<phase>/ of the folder."""


class _LabFailed(Exception):
    """A boot ended in a lab error while finding the culprit: no patch can be blamed."""


class _BaseBroken(Exception):
    """The base does not build: nothing can be said about the series."""

    def __init__(self, built: Build):
        super().__init__("the base tree does not build")
        self.built = built


def check(series: Series, settings: Settings, progress: Progress = lambda message: None,
          only: list[str] | None = None, tree_path: Path | None = None, source: str = "SERIES") -> Path:
    """Checks `series`, `only` narrowing the entries it touches to those named (a retest);
    returns its result folder. `tree_path`: the tree to use instead of the configured one;
    `source`: how the reproduce line names the series (a file, a Message-ID)."""
    folder = result.new_folder(settings.state / "results")
    selection = settings.select(series.files, only, tree_path)
    tree = selection.tree and selection.tree.name
    facts = {"series": series_facts(series), "strict_experimental": settings.strict_experimental, "tree": tree,
             "reproduce": f"bootbot check {source} --tree {shlex.quote(str(tree_path)) if tree_path else f'~/{tree}'}"}
    refused = guard.refusal(series, settings.series_limits)
    if refused:
        outcome = Outcome(REFUSED, detail=[refused], **facts)
    elif not selection.entries:
        outcome = Outcome(SKIP, detail=[selection.reason], **facts)
    else:
        site = settings.site(selection.tree.name, tree_path)
        base = workspace.resolve_base(site.path, series.base_commit, site.branch)
        with workspace.acquire(site.path, settings.workspaces, settings.slots) as ws:
            parts = Workbench(selection.tree, ws, settings, folder, progress)
            cache = settings.state / "cache" / "baseline" / _baseline_key(base, selection.tree, parts, settings)
            outcome = decide(series, selection.entries, base, parts, cache, folder,
                             settings.strict_experimental, progress)
        outcome.tree, outcome.reproduce = tree, facts["reproduce"]
        outcome.build_steps = build_steps(selection.tree)
    result.write(folder, outcome)
    return folder


def build_steps(tree: Tree) -> list[str]:
    """The tree's configure and build steps, as a person would type them."""
    values = {"source": "TREE", "out": "BUILD", "jobs": "JOBS", "fragment": f"checks/trees/{tree.fragment.name}"
              if tree.fragment else ""}
    return [("(in BUILD) " if step.cwd else "") + shlex.join(tree.argv(step, values))
            for step in (*tree.configure, *tree.build)]


def series_facts(series: Series) -> dict:
    return {"subject": series.subject, "version": series.version,
            "patches": [{"index": p.index, "subject": p.subject, "msgid": p.msgid} for p in series.patches]}


def decide(series: Series, entries: list[Entry], base: str, parts: Parts, cache: Path, folder: Path,
           strict: bool, progress: Progress = lambda message: None) -> Outcome:
    """The verdict on `series` (applied on `base`) for `entries`: the rules of a check, whatever
    the parts are. `cache` keeps the base's results; `strict`: experimental entries count."""
    outcome = Outcome(PASS, series_facts(series), base=base, strict_experimental=strict)
    builds = Builds(parts, outcome)
    progress(f"applying {len(series.patches)} patches on {base[:12]}")
    try:
        commits = parts.apply(base, series.am_mbox)
    except workspace.ApplyFailed as e:
        outcome.verdict, outcome.culprit, outcome.detail = APPLY_FAILED, _patch(outcome, e.index), e.message.splitlines()
        return outcome
    try:
        baseline = _baseline(builds, base, entries, cache, folder, progress)
    except _BaseBroken as e:
        outcome.verdict, outcome.detail = ERROR, [str(e), *e.built.errors, f"full log: {e.built.log}"]
        return outcome
    built = builds.at(commits[-1], "series")
    if not built.ok:
        progress("finding the patch that broke the build")
        culprit = _first_bad(len(commits), lambda k: not builds.at(commits[k - 1], f"patches-1-{k}").ok)
        outcome.verdict, outcome.culprit = BUILD_FAILED, _patch(outcome, culprit)
        outcome.detail = [*built.errors, f"full log: {built.log}"]
        return outcome
    results = parts.boot(built, entries, "series")
    outcome.entries = {r.entry: EntryOutcome(r.status, baseline[r.entry].status, r.seconds, r.reason, r.log,
                                             baseline[r.entry].log, r.experimental, r.accel, r.files)
                       for r in results}
    if any(ERROR in (e.status, e.baseline) for e in outcome.entries.values() if not e.experimental):
        outcome.verdict, outcome.detail = ERROR, ["the lab failed (not the series): see the entries in error"]
        return outcome
    broken = [e for e in entries if regressed(outcome.entries[e.name].status, outcome.entries[e.name].baseline,
                                              e.experimental, strict)]
    if broken:
        progress(f"finding the patch that broke {', '.join(e.name for e in broken)}")
        try:
            culprit = _first_bad(len(commits), lambda k: _prefix_breaks(builds, parts, commits, k, broken))
        except _LabFailed as e:
            outcome.verdict, outcome.detail = ERROR, [str(e)]
            return outcome
        outcome.verdict, outcome.culprit = REGRESSION, _patch(outcome, culprit)
        outcome.regressed = [e.name for e in broken]
    return outcome


@dataclass
class Builds:
    """Builds through the parts, recording each in the outcome."""
    parts: Parts
    outcome: Outcome

    def at(self, commit: str, phase: str) -> Build:
        built = self.parts.build(commit, phase)
        self.outcome.builds.append(BuildRecord(commit, phase, built.ok, built.seconds, built.limit,
                                               str(built.log), built.errors))
        return built


def _patch(outcome: Outcome, index: int) -> dict:
    return outcome.series["patches"][index - 1]


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


def _prefix_breaks(builds: Builds, parts: Parts, commits: list[str], k: int, entries: list[Entry]) -> bool:
    phase = f"patches-1-{k}"
    built = builds.at(commits[k - 1], phase)
    if not built.ok:
        return True
    results = parts.boot(built, entries, phase)
    failed = [r for r in results if r.status == ERROR]
    if failed:
        raise _LabFailed(f"the lab failed while finding the culprit ({failed[0].entry}: {failed[0].reason})")
    return any(r.status != PASS for r in results)


def _baseline(builds: Builds, base: str, entries: list[Entry], cache: Path, folder: Path,
              progress: Progress) -> dict[str, BootResult]:
    """The base's result for each entry, in boots/base/ of the folder: booted once per base,
    declarations and lab (`cache` is named after them), then copied from the cache."""
    missing = [e for e in entries if not (cache / e.name / runner.RESULT).exists()]
    if missing:
        built = builds.at(base, "base")
        if not built.ok:
            raise _BaseBroken(built)
        for booted in builds.parts.boot(built, missing, "base"):
            if booted.status != ERROR:   # a lab failure says nothing about the base
                _copy_boot(folder / "boots" / "base" / booted.entry, cache / booted.entry)
    for e in entries:
        if e.name not in {m.name for m in missing}:
            _copy_boot(cache / e.name, folder / "boots" / "base" / e.name)
    return {e.name: BootResult(**json.loads((folder / "boots" / "base" / e.name / runner.RESULT).read_text()))
            for e in entries}


def _copy_boot(source: Path, target: Path) -> None:
    """A boot's own files (console, command, result), not what was staged for it; whole or not at all."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in (runner.CONSOLE, runner.COMMAND, runner.RESULT):
        if (source / name).exists():
            shutil.copyfile(source / name, partial / name)
    partial.rename(target)


def _baseline_key(base: str, tree: Tree, parts: Parts, settings: Settings) -> str:
    key = hashlib.sha256(f"{settings.declarations.digest}:{tree.name}:{parts.identity}".encode()).hexdigest()
    return f"{base}-{key[:16]}"
