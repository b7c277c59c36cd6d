"""The check of one series: refuse or route it, apply it, build, boot what it touches, compare with
the base, and name the patch that broke an entry. The work is done by parts (Parts: a workspace
to apply and build in, a lab to boot in), so that every verdict can be tested on recorded results."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

from bot import folders
from bot.boots.entry import Entry
from bot.boots.runner import BootResult
from bot.changes import guard
from bot.changes.change import Change
from bot.folders import COMMAND, CONSOLE, RESULT, BuildRecord, EntryOutcome, Outcome
from bot.settings import Rules, Settings
from bot.trees import base as base_module
from bot.trees import workspace
from bot.trees.base import Base
from bot.trees.build import Build
from bot.trees.tree import Tree
from bot.verdicts.workbench import Workbench
from bot.words import (
    APPLY_FAILED,
    BUILD_FAILED,
    COMMITS,
    ERROR,
    FAIL,
    FLAKY,
    NO_BASE,
    PASS,
    REFUSED,
    REGRESSION,
    SKIP,
    TIMEOUT,
    counts,
    regressed,
)

Progress = Callable[[str], None]


class Parts(Protocol):
    """What a check needs done; every build and boot it writes into the check's result folder."""
    @property
    def identity(self) -> str:
        """What the base's results depend on besides the base and the declarations."""

    def apply(self, base: str, change: Change) -> list[str]:
        """The change's commits on `base`, in order: a mailed series applied (ApplyFailed naming a
        patch), a branch's as they are."""

    def build(self, commit: str, phase: str) -> Build:
        """Builds `commit`, keeping its log in the folder (Build.log: its path there)."""

    def boot(self, built: Build, entries: list[Entry], phase: str, attempt: int,
             limits: dict[str, tuple[float, float]]) -> list[BootResult]:
        """Boots `entries` of a build once, into boots/<phase>/<entry>[.<attempt>] of the folder,
        each within its limits (overall, silence) when `limits` names it."""

    def blame(self, commit: str, path: str, line: int) -> tuple[str, str] | None:
        """The commit that last changed line `line` of `path` at `commit`, and the line's text."""


class _LabFailed(Exception):
    """A boot ended in a lab error while finding the culprit: no patch can be blamed."""


class _BaseBroken(Exception):
    """The base does not build: nothing can be said about the series."""

    def __init__(self, built: Build):
        super().__init__("the base tree does not build")
        self.built = built


def check(series: Change, settings: Settings, progress: Progress = lambda message: None,
          only: list[str] | None = None, tree_path: Path | None = None, named: str = "SERIES",
          origin: dict | None = None) -> Path:
    """Checks `series`, `only` narrowing the entries it touches to those named (a retest);
    returns its result folder. `tree_path`: the tree to use instead of the configured one;
    `named`: how the reproduce line names the series (a file's name, a Message-ID); `origin`:
    where it came from, for pages (source, archive, link)."""
    folder = folders.new_folder(settings.state.results)
    selection = settings.select(series.files, only, tree_path)
    kind = selection.tree.name if selection.tree else None
    refused = guard.refusal(series, settings.series_limits)
    if refused:
        outcome = Outcome(REFUSED, series_facts(series), detail=[refused])
    elif selection.tree is None or not selection.entries:
        outcome = Outcome(SKIP, series_facts(series), detail=[selection.reason])
    else:
        outcome = _checked(series, selection.tree, selection.entries, settings, tree_path, folder, progress)
    outcome.tree, outcome.reproduce, outcome.origin = kind, _reproduce(series, named, kind), origin or {}
    outcome.strict_experimental = settings.rules.strict_experimental
    folders.write(folder, outcome)
    return folder


def _checked(series: Change, tree: Tree, entries: list[Entry], settings: Settings, tree_path: Path | None,
             folder: Path, progress: Progress) -> Outcome:
    """The outcome of applying, building and booting `series` on its base in a workspace of the tree."""
    site = settings.site(tree.name, tree_path)
    base = base_module.find(site, series, settings.state.trees, tree.tags, settings.guess_days)
    with workspace.acquire(site.path, settings.workspaces, settings.slots) as ws:
        parts = Workbench(tree, ws, settings, folder, progress)
        cache = settings.state.cache / "baseline" / _baseline_key(base.commit, tree, parts, settings)
        outcome = decide(series, entries, base, parts, cache, folder, settings.rules, progress)
    outcome.build_steps, outcome.fragment = build_steps(tree), tree.fragment_lines()
    return outcome


def build_steps(tree: Tree) -> list[str]:
    """The tree's configure and build steps, as a person would type them."""
    values = {"source": "TREE", "out": "BUILD", "jobs": "JOBS", "fragment": f"checks/trees/{tree.fragment.name}"
              if tree.fragment else ""}
    return [("(in BUILD) " if step.cwd else "") + shlex.join(tree.argv(step, values))
            for step in (*tree.configure, *tree.build)]


def _reproduce(series: Change, named: str, kind: str | None) -> str:
    """The command that checks the same again, naming no path of this machine's."""
    if series.kind == COMMITS:   # no command checks a range yet: the commits, as a person would look at them
        return f"git fetch {series.branch} && git log --first-parent {series.base_commit}..{series.commits[-1]}"
    return f"bootbot check {named}" + (f" --tree ~/{kind}" if kind else "")


def series_facts(series: Change) -> dict:
    """What reports say of the change: a mailed patch by its Message-ID, a commit by its id,
    author, committer and Link: posting."""
    commit = ("commit", "author", "committer", "link")
    return {"subject": series.subject, "version": series.version, "author": series.patches[0].author,
            "kind": series.kind, **({"branch": series.branch} if series.kind == COMMITS else {}),
            "patches": [{"index": p.index, "subject": p.subject, "msgid": p.msgid,
                         **({key: getattr(p, key) for key in commit} if series.kind == COMMITS else {})}
                        for p in series.patches]}


@dataclass
class Judged:
    """An entry's boots of one commit, and what they add up to."""
    attempts: list[BootResult]
    earlier: list[BootResult] = field(default_factory=list)   # shown, not counted: the cached base's

    @property
    def status(self) -> str:
        statuses = [a.status for a in self.attempts]
        if ERROR in statuses:
            return ERROR
        if PASS in statuses:
            return PASS if statuses[0] == PASS else FLAKY
        return statuses[0]   # it failed every time: the first says how

    @property
    def deciding(self) -> BootResult:
        """The attempt the verdict quotes: the first that did not pass, else the first."""
        return next((a for a in self.attempts if a.status != PASS), self.attempts[0])

    @property
    def stable(self) -> bool:
        """Worth caching as the base's: a pass at the first try, or the same failure every time (a
        timeout never: load alone can make one)."""
        statuses = {a.status for a in self.attempts}
        return self.status == PASS or (statuses == {FAIL} and len(self.attempts) > 1)


class _Intermittent(Exception):
    """A culprit-search step did not show the series' failure, nor a clean pass."""


class _BaseTimedOut(Exception):
    """The base's boot timed out in this run: the machine, not the series, is in question."""


def _entry_outcome(series: Judged, base: Judged) -> EntryOutcome:
    shown = series.deciding
    # the fullest: with a symbol, then with the fault named (a retry keeps QEMU's exception log)
    located = [a.location for a in series.attempts if a.location]
    location = max(located, key=lambda l: (bool(l.get("symbol")), ":" in l["what"]), default={})
    return EntryOutcome(series.status, base.status, shown.seconds, shown.reason, shown.log, base.deciding.log,
                        shown.experimental, shown.accel, shown.files, _attempts(series.attempts),
                        _attempts(base.earlier + base.attempts), shown.kind, shown.block, location)


def _attempts(results: list[BootResult]) -> list[dict]:
    return [{"status": r.status, "seconds": r.seconds, "reason": r.reason, "log": r.log} for r in results]


def _read_boot(folder: Path) -> BootResult:
    return BootResult(**json.loads((folder / RESULT).read_text()))


def decide(series: Change, entries: list[Entry], base: Base, parts: Parts, cache: Path, folder: Path,
           rules: Rules = Rules(), progress: Progress = lambda message: None) -> Outcome:
    """The verdict on `series` (applied on `base`) for `entries`: the rules of a check, whatever
    the parts are. `cache` keeps the base's stable results. On a guessed base nothing is blamed
    on a patch: a series that does not apply there is NO_BASE, and a build failure or a
    regression names no culprit."""
    return _Check(series, entries, base, parts, cache, folder, rules, progress).run()


class _Check:
    def __init__(self, series, entries, base: Base, parts, cache, folder, rules, progress):
        self.series, self.entries, self.base, self.known, self.parts = series, entries, base.commit, base.known, parts
        self.cache, self.folder, self.rules, self.progress = cache, folder, rules, progress
        self.outcome = Outcome(PASS, series_facts(series), base=base.commit, base_how=base.how, base_by=base.by,
                               base_tried=list(base.tried), strict_experimental=rules.strict_experimental)
        self.builds = Builds(parts, self.outcome)

    def counts(self, entry: Entry) -> bool:
        return counts(entry.experimental, self.rules.strict_experimental)

    def run(self) -> Outcome:
        outcome = self.outcome
        self.progress(f"applying {len(self.series.patches)} patches on {self.base[:12]}")
        try:
            self.commits = self.parts.apply(self.base, self.series)
        except workspace.ApplyFailed as e:
            outcome.detail = e.message.splitlines()
            if not self.known:   # not where it was made, maybe: its author's work is not in question
                outcome.verdict = NO_BASE
                return outcome
            outcome.verdict, outcome.culprit = APPLY_FAILED, _patch(outcome, e.index) if e.index else None
            return outcome
        try:
            self.based = self.baseline()
            built = self.series_build = self.builds.at(self.commits[-1], "series")
            if not built.ok:
                return self.build_failed(built)
            judged = self.boot(built, self.entries, "series", self.limits(), tries=1)
            self.confirm(judged)
        except _BaseBroken as e:
            outcome.verdict, outcome.detail = ERROR, [str(e), *e.built.errors, f"full log: {e.built.log}"]
            return outcome
        except _BaseTimedOut as e:
            outcome.verdict, outcome.detail = ERROR, [str(e)]
            return outcome
        outcome.entries = {e.name: _entry_outcome(judged[e.name], self.based[e.name]) for e in self.entries}
        for entry in outcome.entries.values():
            entry.changed = self.changed(entry.location)
        return self.verdict(judged)

    def changed(self, location: dict) -> dict:
        """The patch of the series that made the source line a boot died on, and the line."""
        if not location.get("file"):
            return {}
        blamed = self.parts.blame(self.commits[-1], location["file"], location["line"])
        if not blamed or blamed[0] not in self.commits:
            return {}
        return {"patch": self.commits.index(blamed[0]) + 1, "line": blamed[1]}

    def baseline(self) -> dict[str, Judged]:
        """The base's result for each entry, in boots/base/ of the folder: booted (and confirmed)
        once per base, declarations and lab (`cache` is named after them), then copied from the
        cache."""
        missing = [e for e in self.entries if not (self.cache / e.name / RESULT).exists()]
        judged = self.boot_base(missing, 1) if missing else {}
        self.measured = set(judged)   # booted in this run, not taken from the cache
        for e in self.entries:
            if e.name not in judged:
                judged[e.name] = Judged([_take_cached(self.cache / e.name, self.folder, Path("boots/base") / e.name)])
        return judged

    def boot_base(self, entries: list[Entry], attempt: int) -> dict[str, Judged]:
        built = self.build_base()
        judged = self.boot(built, entries, "base", {}, attempt)
        timed_out = [e.name for e in entries if judged[e.name].status == TIMEOUT and self.counts(e)]
        if timed_out:
            raise _BaseTimedOut(f"the base timed out here ({', '.join(timed_out)}): this machine is too slow "
                                "or loaded right now, or the base hangs; nothing is judged")
        for name, j in judged.items():
            if j.stable:   # a flip or a lab failure says nothing lasting about the base
                _copy_boot((self.folder / j.deciding.log).parent, self.cache / name)
        return judged

    def build_base(self) -> Build:
        built = self.builds.at(self.base, "base")
        if not built.ok:
            raise _BaseBroken(built)
        return built

    def boot(self, built: Build, entries: list[Entry], phase: str, limits, first: int = 1,
             tries: int | None = None) -> dict[str, Judged]:
        """Boots `entries`, each that decides the verdict again while it fails, up to `tries` boots
        (`confirm` in all)."""
        judged = {r.entry: Judged([r]) for r in self.parts.boot(built, entries, phase, first, limits)}
        for attempt in range(first + 1, first + (tries or self.rules.confirm)):
            again = [e for e in entries if judged[e.name].status in (FAIL, TIMEOUT) and self.counts(e)]
            if not again:
                break
            for r in self.parts.boot(built, again, phase, attempt, limits):
                judged[r.entry].attempts.append(r)
        return judged

    def confirm(self, judged: dict[str, Judged]) -> None:
        """Before a failure with the series counts, the base boots again now when its result came
        from the cache (an idle hour's, maybe), and the series boots again, up to `confirm` boots
        in all, within limits that follow how fast the base boots now."""
        baseline = self.based
        suspects = [e for e in self.entries if self.counts(e)
                    and judged[e.name].status in (FAIL, TIMEOUT) and baseline[e.name].status == PASS]
        stale = [e for e in suspects if e.name not in self.measured]
        if stale:
            self.progress(f"{', '.join(e.name for e in stale)} failed: booting the base again to compare")
            fresh = self.boot_base(stale, len(baseline[stale[0].name].attempts) + 1)
            for e in stale:
                baseline[e.name] = Judged(fresh[e.name].attempts, earlier=baseline[e.name].attempts)
        suspects = [e for e in suspects if baseline[e.name].status == PASS]
        if suspects and self.rules.confirm > 1:
            built = self.builds.at(self.commits[-1], "series") if stale else self.series_build
            again = self.boot(built, suspects, "series", self.limits(), 2, self.rules.confirm - 1)
            for e in suspects:
                judged[e.name] = Judged(judged[e.name].attempts + again[e.name].attempts)

    def limits(self) -> dict[str, tuple[float, float]]:
        """Each entry's limits: its own, or more when the base's latest pass took long here."""
        rules, limits = self.rules, {}
        for e in self.entries:
            took = next((a.seconds for a in reversed(self.based[e.name].attempts) if a.status == PASS), 0)
            limits[e.name] = (max(e.timeout, rules.timeout_factor * took), max(e.silence, rules.silence_factor * took))
        return limits

    def build_failed(self, built: Build) -> Outcome:
        """Names the first patch that does not build, once the base builds here now (its results
        may have come from the cache, built with another compiler or in another state)."""
        if not any(b.phase == "base" for b in self.outcome.builds):   # a cached base's results needed none
            self.build_base()
        self.outcome.verdict, self.outcome.detail = BUILD_FAILED, [*built.errors, f"full log: {built.log}"]
        if not self.known:
            return self.outcome
        self.progress("finding the patch that broke the build")
        culprit = _first_bad(len(self.commits), lambda k: not self.builds.at(self.commits[k - 1], f"patches-1-{k}").ok)
        self.outcome.culprit = _patch(self.outcome, culprit)
        return self.outcome

    def verdict(self, judged: dict[str, Judged]) -> Outcome:
        outcome, strict = self.outcome, self.rules.strict_experimental
        counted = [e for e in self.entries if self.counts(e)]
        if any(ERROR in (outcome.entries[e.name].status, outcome.entries[e.name].baseline) for e in counted):
            outcome.verdict, outcome.detail = ERROR, ["the lab failed (not the series): see the entries in error"]
            return outcome
        broken = [e for e in self.entries if regressed(outcome.entries[e.name].status, outcome.entries[e.name].baseline,
                                                       e.experimental, strict)]
        if broken:
            return self.culprit(broken, {e.name: judged[e.name].status for e in broken})
        flaky = [e.name for e in counted if outcome.entries[e.name].status == FLAKY
                 or (outcome.entries[e.name].baseline == FLAKY and outcome.entries[e.name].status != PASS)]
        if flaky:
            outcome.verdict = FLAKY
            outcome.detail = [f"{', '.join(flaky)} passed and failed, with the series or on the base: "
                              "nothing is blamed on the series"]
        return outcome

    def culprit(self, broken: list[Entry], failures: dict[str, str]) -> Outcome:
        outcome = self.outcome
        outcome.verdict, outcome.regressed = REGRESSION, [e.name for e in broken]
        if not self.known:
            return outcome
        self.progress(f"finding the patch that broke {', '.join(e.name for e in broken)}")
        try:
            k = _first_bad(len(self.commits), lambda k: self.prefix_breaks(k, broken, failures))
        except _LabFailed as e:
            outcome.verdict, outcome.regressed, outcome.detail = ERROR, [], [str(e)]
        except _Intermittent as e:
            outcome.detail = [str(e), "the failure is intermittent in the culprit search: no patch is named"]
        else:
            outcome.culprit = _patch(outcome, k)
        return outcome

    def prefix_breaks(self, k: int, broken: list[Entry], failures: dict[str, str]) -> bool:
        """Whether patches 1..k fail as the series does (the same entry, the same way, every try);
        _Intermittent when they neither do so nor pass."""
        phase = f"patches-1-{k}"
        built = self.builds.at(self.commits[k - 1], phase)
        if not built.ok:
            raise _Intermittent(f"patches 1-{k} do not build (a later patch mends it)")
        judged = self.boot(built, broken, phase, self.limits())
        for e in broken:
            status = judged[e.name].status
            if status == ERROR:
                raise _LabFailed(f"the lab failed while finding the culprit "
                                 f"({e.name}: {judged[e.name].deciding.reason})")
            if status not in (PASS, failures[e.name]):
                raise _Intermittent(f"{e.name} with patches 1-{k}: {status}, with the series: {failures[e.name]}")
        return any(judged[e.name].status != PASS for e in broken)


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


def _copy_boot(source: Path, target: Path) -> None:
    """A boot's own files (console, command, result), not what was staged for it; whole or not at
    all, replacing an older copy."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in (CONSOLE, COMMAND, RESULT):
        if (source / name).exists():
            shutil.copyfile(source / name, partial / name)
    shutil.rmtree(target, ignore_errors=True)
    try:
        partial.rename(target)
    except OSError:   # another check stored it meanwhile: as good as this one
        shutil.rmtree(partial, ignore_errors=True)


def _take_cached(cached: Path, folder: Path, where: Path) -> BootResult:
    """A cached boot, copied to `where` in the result folder, its log named there (it was booted
    maybe as a retry, into <entry>.<attempt>)."""
    _copy_boot(cached, folder / where)
    taken = replace(_read_boot(folder / where), log=str(where / CONSOLE))
    (folder / where / RESULT).write_text(json.dumps(asdict(taken), indent=1) + "\n")
    return taken


def _baseline_key(base: str, tree: Tree, parts: Parts, settings: Settings) -> str:
    key = hashlib.sha256(f"{settings.declarations.digest}:{tree.name}:{parts.identity}".encode()).hexdigest()
    return f"{base}-{key[:16]}"
