"""The rules of a check on recorded results, in milliseconds: parts that play back what a workspace
and a lab did (check.Parts), so that every verdict path is covered beside the real builds and
boots of test_check.py."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import ENTRIES

from bot import config as configuration
from bot import folders
from bot import settings as settings_module
from bot.boots.runner import BootResult
from bot.changes.change import Change, Patch
from bot.reports import text
from bot.settings import Rules
from bot.trees.base import Base
from bot.trees.build import Build
from bot.trees.workspace import ApplyFailed
from bot.verdicts import check
from bot.words import (
    APPLY_FAILED,
    BUILD_FAILED,
    BY_BASE_COMMIT,
    BY_BRANCH,
    ERROR,
    EXIT_STATUS,
    FAIL,
    FLAKY,
    NO_BASE,
    PASS,
    REFUSED,
    REGRESSION,
    SKIP,
    TIMEOUT,
)

BASE = "b" * 40


def series(count: int, files: tuple[str, ...] = ("arch/x86/platform/pvh/head.S",)) -> Change:
    patches = tuple(Patch(k, f"x86: step {k}", f"patch-{k}@example.org", "Ann <ann@example.org>", files)
                    for k in range(1, count + 1))
    return Change("x86: steps", 1, patches, None, None, tuple(b"" for _ in patches))


class Recorded:
    """Plays back a workspace and a lab: commits c1..cN, builds that fail where told, boots whose
    status is what `statuses` holds for (commit, entry), else pass (a list: the statuses of its
    boots in turn, the last repeating); writes what the real parts write into the result folder
    (a console and result.json per boot). A failed boot is located at `located` from its second
    attempt on (as QEMU's exception log is only kept then); `origins` says which commit made a
    source line: (path, line): (commit, text)."""
    identity = "recorded"

    def __init__(self, folder: Path, count: int, statuses: dict | None = None, broken_builds=(),
                 apply_fails_at: int | None = None, located: dict | None = None, origins: dict | None = None):
        self.located, self.origins = located or {}, origins or {}
        self.folder, self.commits = folder, [f"c{k}" for k in range(1, count + 1)]
        self.statuses, self.broken_builds, self.apply_fails_at = statuses or {}, set(broken_builds), apply_fails_at
        self.built: list[str] = []
        self.booted: list[tuple[str, str]] = []
        self.limits: list[dict] = []

    def apply(self, base: str, change: Change) -> list[str]:
        if self.apply_fails_at == "unnamed":
            raise ApplyFailed(None, "Patch is empty.")
        if self.apply_fails_at:
            raise ApplyFailed(self.apply_fails_at, f"error: patch failed: file.c:1\nPatch failed at {self.apply_fails_at}")
        return self.commits

    def build(self, commit: str, phase: str) -> Build:
        self.built.append(commit)
        if commit in self.broken_builds:
            return Build(False, 1.0, Path(f"builds/{len(self.built)}-{phase}/build.log"),
                         errors=[f"{commit}.c:1:1: error: expected ';'"])
        return Build(True, 1.0, Path("unused"), {"image": Path(commit)})

    def boot(self, built: Build, entries, phase: str, attempt: int, limits) -> list[BootResult]:
        commit = built.artifacts["image"].name
        self.limits.append(dict(limits))
        results = []
        for e in entries:
            played = self.statuses.get((commit, e.name), PASS)
            played = [played] if isinstance(played, str) else played
            status = played[min(self.booted.count((commit, e.name)), len(played) - 1)]
            self.booted.append((commit, e.name))
            folder = self.folder / "boots" / phase / (e.name if attempt == 1 else f"{e.name}.{attempt}")
            folder.mkdir(parents=True)
            (folder / "console.log").write_text(f"booting {commit}\n{status}: the deciding line\n")
            booted = BootResult(e.name, status, 1.0, f"{status}: the deciding line",
                                str((folder / "console.log").relative_to(self.folder)), e.experimental, "tcg",
                                location=self.located if status != PASS and attempt > 1 else {})
            (folder / "result.json").write_text(json.dumps(booted.__dict__))
            results.append(booted)
        return results

    def blame(self, commit: str, path: str, line: int):
        return self.origins.get((path, line))


def breaks(entry: str, at: int, count: int, status: str = FAIL) -> dict:
    """Statuses of an entry that patch `at` breaks: it fails from c<at> on."""
    return {(f"c{k}", entry): status for k in range(at, count + 1)}


KNOWN = Base(BASE, BY_BASE_COMMIT, "its base-commit")
GUESSED = Base(BASE, BY_BRANCH, "guessed: the head of xen/staging (no base-commit; no commit of xen/staging, "
                                "xen/master holds its files as its patches found them)", ("xen/staging", "xen/master"))


def decide(tmp_path: Path, parts: Recorded, count: int, entries=("pvh",), strict=False, base=KNOWN) -> folders.Outcome:
    return check.decide(series(count), [ENTRIES[n] for n in entries], base, parts, tmp_path / "cache",
                        parts.folder, Rules(strict_experimental=strict))


@pytest.fixture
def folder(tmp_path) -> Path:
    made = tmp_path / "result"
    made.mkdir()
    return made


def test_a_series_that_breaks_nothing_passes_with_two_builds(tmp_path, folder):
    parts = Recorded(folder, 3)
    outcome = decide(tmp_path, parts, 3, entries=("bios", "pvh"))
    assert outcome.verdict == PASS and outcome.culprit is None and outcome.regressed == []
    assert {n: (e.status, e.baseline) for n, e in outcome.entries.items()} == {"bios": (PASS, PASS), "pvh": (PASS, PASS)}
    assert [b.commit for b in outcome.builds] == [BASE, "c3"]
    assert outcome.entries["pvh"].base_log == "boots/base/pvh/console.log"


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_the_patch_that_breaks_an_entry_is_named_wherever_it_is(tmp_path, count):
    for at in range(1, count + 1):
        folder = tmp_path / f"{count}-{at}"
        folder.mkdir()
        parts = Recorded(folder, count, breaks("pvh", at, count))
        outcome = decide(folder, parts, count)
        assert (outcome.verdict, outcome.regressed, outcome.culprit["index"]) == (REGRESSION, ["pvh"], at)
        assert outcome.culprit["msgid"] == f"patch-{at}@example.org"
        # the base, the series, then a binary search over the prefixes
        assert len(parts.built) <= 2 + math.ceil(math.log2(count))


HEAD_S = "arch/x86/platform/pvh/head.S"
LOCATED = {"what": "triple fault: #UD", "mode": "protected", "pc": "0x1000480", "symbol": "pvh_start_xen+0x0",
           "file": HEAD_S, "line": 54, "binary": "vmlinux"}


@pytest.mark.parametrize("made_by, changed", [("c2", {"patch": 2, "line": "\tud2"}), ("c0ffee", {})])
def test_where_a_boot_died_is_kept_with_the_patch_that_made_that_line(tmp_path, folder, made_by, changed):
    parts = Recorded(folder, 3, breaks("pvh", 2, 3), located=LOCATED, origins={(HEAD_S, 54): (made_by, "\tud2")})
    entry = decide(tmp_path, parts, 3).entries["pvh"]
    # the first attempt, which the verdict quotes, has no location: a retry's is kept
    assert entry.location == LOCATED and entry.changed == changed


@pytest.mark.parametrize("at", [1, 2, 3])
def test_the_patch_that_breaks_the_build_is_named_with_its_error(tmp_path, folder, at):
    parts = Recorded(folder, 3, broken_builds=[f"c{k}" for k in range(at, 4)])
    outcome = decide(tmp_path, parts, 3)
    assert (outcome.verdict, outcome.culprit["index"]) == (BUILD_FAILED, at)
    assert outcome.detail[0] == "c3.c:1:1: error: expected ';'" and outcome.detail[-1].startswith("full log: builds/")
    assert outcome.entries == {} and ("c3", "pvh") not in parts.booted


@pytest.mark.parametrize("at", [1, 3])
def test_a_patch_that_does_not_apply_is_named_and_nothing_is_built(tmp_path, folder, at):
    parts = Recorded(folder, 3, apply_fails_at=at)
    outcome = decide(tmp_path, parts, 3)
    assert (outcome.verdict, outcome.culprit["index"]) == (APPLY_FAILED, at)
    assert "error: patch failed: file.c:1" in outcome.detail and parts.built == []


def test_a_series_that_does_not_apply_on_a_guessed_base_is_no_base_and_blames_nobody(tmp_path, folder):
    parts = Recorded(folder, 3, apply_fails_at=2)
    outcome = decide(tmp_path, parts, 3, base=GUESSED)
    assert (outcome.verdict, outcome.culprit, parts.built) == (NO_BASE, None, [])
    assert EXIT_STATUS[NO_BASE] not in (EXIT_STATUS[APPLY_FAILED], EXIT_STATUS[PASS], EXIT_STATUS[ERROR])
    report = text.text(outcome, folder, "bootbot <b@example.org>")
    assert report.startswith("bootbot: NO BASE for [PATCH 0/3] x86: steps\n")
    assert "Base: bbbbbbbbbbbb, guessed: the head of xen/staging (no base-commit; no commit\nof xen/staging, " \
        "xen/master holds" in report
    assert "\n  git format-patch --base=auto ...   (the branch's upstream set), or --base=COMMIT\n" in report
    assert "patch 2" not in report.lower() and "Reported-by" not in report and "First bad" not in report


def test_a_build_failure_on_a_guessed_base_names_no_patch_and_searches_for_none(tmp_path, folder):
    parts = Recorded(folder, 3, broken_builds=["c2", "c3"])
    outcome = decide(tmp_path, parts, 3, base=GUESSED)
    assert (outcome.verdict, outcome.culprit) == (BUILD_FAILED, None)
    assert parts.built == [BASE, "c3"] and outcome.detail[0] == "c3.c:1:1: error: expected ';'"
    report = text.text(outcome, folder, "bootbot <b@example.org>")
    assert report.startswith("bootbot: BUILD FAILED on a guessed base for [PATCH 0/3] x86: steps\n")
    assert "no patch is blamed" in report and "Reported-by" not in report and "First bad" not in report


def test_a_regression_on_a_guessed_base_names_no_patch_and_searches_for_none(tmp_path, folder):
    parts = Recorded(folder, 3, breaks("pvh", 2, 3))
    outcome = decide(tmp_path, parts, 3, base=GUESSED)
    assert (outcome.verdict, outcome.regressed, outcome.culprit) == (REGRESSION, ["pvh"], None)
    assert parts.built == [BASE, "c3"]   # no prefix of the series built
    report = text.text(outcome, folder, "bootbot <b@example.org>")
    assert report.startswith("bootbot: REGRESSION on a guessed base: pvh stops booting with [PATCH 0/3] x86:\nsteps")
    assert "no patch is blamed" in report and "Reported-by" not in report and "First bad" not in report


@pytest.mark.parametrize("base, tagged", [(GUESSED, False), (KNOWN, True)])
def test_a_pass_suggests_a_tag_only_on_a_known_base(tmp_path, folder, base, tagged):
    outcome = decide(tmp_path, Recorded(folder, 1), 1, base=base)
    report = text.text(outcome, folder, "bootbot <b@example.org>")
    assert outcome.verdict == PASS and ("| Tested-by: bootbot" in report) == tagged


def test_a_series_that_git_am_refuses_naming_no_patch_blames_none(tmp_path, folder):
    outcome = decide(tmp_path, Recorded(folder, 3, apply_fails_at="unnamed"), 3)
    assert (outcome.verdict, outcome.culprit) == (APPLY_FAILED, None)
    assert "The series does not apply (git am named no patch)" in text.text(outcome, folder, "b <b@example.org>")


def test_a_build_failure_after_a_cached_base_builds_the_base_before_blaming(tmp_path):
    """The base's results came from the cache; the series does not build now, nor does the base
    (a compiler changed): that is the lab's, not patch 1's."""
    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    first.mkdir(), second.mkdir(), third.mkdir()
    decide(tmp_path, Recorded(first, 2), 2)
    outcome = decide(tmp_path, Recorded(second, 2, broken_builds=["c1", "c2", BASE]), 2)
    assert outcome.verdict == ERROR and outcome.culprit is None
    assert outcome.detail[0] == "the base tree does not build"
    parts = Recorded(third, 2, broken_builds=["c2"])
    outcome = decide(tmp_path, parts, 2)
    assert (outcome.verdict, outcome.culprit["index"]) == (BUILD_FAILED, 2) and parts.built == ["c2", BASE, "c1"]


def test_a_base_that_does_not_build_is_a_lab_error(tmp_path, folder):
    parts = Recorded(folder, 2, broken_builds=[BASE])
    outcome = decide(tmp_path, parts, 2)
    assert outcome.verdict == ERROR and outcome.culprit is None
    assert outcome.detail[:2] == ["the base tree does not build", f"{BASE}.c:1:1: error: expected ';'"]


@pytest.mark.parametrize("where", ["base", "series"])
def test_a_lab_error_in_a_boot_blames_nobody(tmp_path, folder, where):
    commit = BASE if where == "base" else "c2"
    parts = Recorded(folder, 2, {(commit, "pvh"): ERROR})
    outcome = decide(tmp_path, parts, 2, entries=("bios", "pvh"))
    assert outcome.verdict == ERROR and outcome.culprit is None and outcome.regressed == []
    assert outcome.detail == ["the lab failed (not the series): see the entries in error"]


def test_a_lab_error_in_the_culprit_search_blames_nobody(tmp_path, folder):
    parts = Recorded(folder, 3, {**breaks("pvh", 1, 3), ("c1", "pvh"): ERROR})
    outcome = decide(tmp_path, parts, 3)
    assert outcome.verdict == ERROR and outcome.culprit is None
    assert outcome.detail == ["the lab failed while finding the culprit (pvh: error: the deciding line)"]


def test_an_entry_broken_on_the_base_too_is_no_regression(tmp_path, folder):
    parts = Recorded(folder, 2, {(BASE, "pvh"): FAIL, **breaks("pvh", 1, 2)})
    outcome = decide(tmp_path, parts, 2)
    assert outcome.verdict == PASS and outcome.entries["pvh"].baseline == FAIL


def test_a_base_that_times_out_here_is_a_lab_error_not_a_verdict(tmp_path, folder):
    parts = Recorded(folder, 2, {(BASE, "pvh"): TIMEOUT, **breaks("pvh", 1, 2)})
    outcome = decide(tmp_path, parts, 2)
    assert outcome.verdict == ERROR and outcome.culprit is None
    assert outcome.detail[0].startswith("the base timed out here (pvh)")
    assert not (tmp_path / "cache" / "pvh").exists()


@pytest.mark.parametrize("strict, verdict", [(False, PASS), (True, ERROR)])
def test_an_experimental_base_that_times_out_is_a_lab_error_only_when_it_decides(tmp_path, folder, strict, verdict):
    parts = Recorded(folder, 2, {(BASE, "xen-pvh"): TIMEOUT})
    outcome = decide(tmp_path, parts, 2, entries=("pvh", "xen-pvh"), strict=strict)
    assert outcome.verdict == verdict
    assert parts.booted.count((BASE, "xen-pvh")) == (3 if strict else 1)   # retried only when it decides
    if not strict:
        assert outcome.entries["xen-pvh"].baseline == TIMEOUT and outcome.entries["pvh"].status == PASS


@pytest.mark.parametrize("strict, verdict", [(False, PASS), (True, REGRESSION)])
def test_an_experimental_entry_decides_only_when_strict(tmp_path, folder, strict, verdict):
    parts = Recorded(folder, 2, breaks("xen-pvh", 2, 2))
    outcome = decide(tmp_path, parts, 2, entries=("pvh", "xen-pvh"), strict=strict)
    assert outcome.verdict == verdict and outcome.strict_experimental == strict
    assert parts.booted.count(("c2", "xen-pvh")) == (3 if strict else 1)   # retried only when it decides
    report = text.text(outcome, folder, "bootbot <b@example.org>")
    assert ("Console of xen-pvh" in report) == strict
    assert ("* experimental: decides the verdict here" in report) == strict


def test_the_base_is_booted_once_and_its_results_come_from_the_cache_after(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    decide(tmp_path, Recorded(first, 2), 2)
    again = Recorded(second, 2)
    outcome = decide(tmp_path, again, 2)
    assert BASE not in again.built and (BASE, "pvh") not in again.booted
    assert outcome.verdict == PASS and outcome.entries["pvh"].baseline == PASS
    assert (second / "boots/base/pvh/console.log").read_text() == f"booting {BASE}\npass: the deciding line\n"


def test_a_failure_boots_the_cached_base_again_now_and_retries_under_its_timing(tmp_path):
    """The cached base passed in an idle hour; the series fails now: the base is booted again in
    this run, and the series' retries get limits that follow how long that boot took."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    decide(tmp_path, Recorded(first, 2), 2)
    again = Recorded(second, 2, breaks("pvh", 2, 2))
    outcome = decide(tmp_path, again, 2)
    assert outcome.verdict == REGRESSION and outcome.culprit["index"] == 2
    assert again.built == ["c2", BASE, "c2", "c1"]   # the series, the base again, the series again, a prefix
    assert [a["status"] for a in outcome.entries["pvh"].attempts] == [FAIL, FAIL, FAIL]
    assert [a["log"] for a in outcome.entries["pvh"].base_attempts] == ["boots/base/pvh/console.log",
                                                                        "boots/base/pvh.2/console.log"]
    assert again.limits[0]["pvh"] == (ENTRIES["pvh"].timeout, ENTRIES["pvh"].silence)   # the base took 1 s


def test_a_base_cached_from_a_retry_names_its_log_where_it_is_copied(tmp_path):
    """The base passed at its second boot (booted again when a series failed): taken from the
    cache in a later check, its result names the log in boots/base/<entry>/ of that check."""
    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    first.mkdir(), second.mkdir(), third.mkdir()
    decide(tmp_path, Recorded(first, 2), 2)
    decide(tmp_path, Recorded(second, 2, breaks("pvh", 2, 2)), 2)   # the base booted again: pvh.2
    assert json.loads((tmp_path / "cache/pvh/result.json").read_text())["log"] == "boots/base/pvh.2/console.log"
    outcome = decide(tmp_path, Recorded(third, 2), 2)
    log = outcome.entries["pvh"].base_log
    assert log == "boots/base/pvh/console.log" and (third / log).is_file()
    assert json.loads((third / "boots/base/pvh/result.json").read_text())["log"] == log


def test_a_lab_error_on_the_base_is_not_cached(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    decide(tmp_path, Recorded(first, 1, {(BASE, "pvh"): ERROR}), 1)
    again = Recorded(second, 1)
    assert decide(tmp_path, again, 1).verdict == PASS and BASE in again.built


def test_the_report_is_read_from_the_result_folder_alone(tmp_path, folder):
    outcome = decide(tmp_path, Recorded(folder, 3, breaks("pvh", 2, 3)), 3)
    outcome.reproduce = "bootbot check series.mbox --tree ~/linux"
    folders.write(folder, outcome)
    moved = folder.rename(tmp_path / "elsewhere")   # nothing in it names where it was made
    report = text.text(folders.read(moved), moved, "bootbot <b@example.org>")
    assert report.startswith("bootbot: REGRESSION: pvh stops booting at [PATCH 2/3] x86: step 2\n")
    assert "In [PATCH 0/3] x86: steps; pvh boots on the base." in report
    assert "First bad patch: [2/3] x86: step 2" in report
    assert "Console of pvh, up to the line that decided it (=>):\n  booting c3\n=> fail: the deciding line" in report
    assert "bootbot check series.mbox --tree ~/linux" in report


def test_the_report_says_where_it_died_first_and_keeps_prose_within_80_columns(tmp_path, folder):
    parts = Recorded(folder, 3, breaks("pvh", 2, 3), located=LOCATED, origins={(HEAD_S, 54): ("c2", "\tud2")})
    outcome = decide(tmp_path, parts, 3, entries=("efi", "pvh"))
    outcome.series["patches"][1]["subject"] = "x86/pvh: a subject as long as they come on the list, " + "word " * 8
    outcome.reproduce = "bootbot check 20261130.long-message-id-of-the-series@example.org --tree ~/linux"
    report = text.text(outcome, folder, "bootbot <bootbot@example.org>")
    lines = report.splitlines()
    assert lines[0] == "bootbot: REGRESSION: pvh stops booting at [PATCH 2/3] x86/pvh: a subject as long"
    where = lines.index("pvh: triple fault: #UD at pvh_start_xen+0x0 (arch/x86/platform/pvh/head.S:54)")
    assert where == 2 and lines[3] == "  patch 2 made that line: ud2"
    # the table shows what changed against the base, and names the rest
    table = lines[lines.index(next(l for l in lines if l.startswith("entry "))):]
    assert [row.split()[0] for row in table[1:3]] == ["pvh", "As"] and "efi (pass)" in table[2]
    # quoted console lines, commands and table rows stay whole; prose is wrapped
    prose = [l for l in lines if not l.startswith(("  ", "=> ", "efi ", "pvh ", "| "))]
    assert all(len(l) <= 80 for l in prose), [l for l in prose if len(l) > 80]


@pytest.fixture
def settings(tmp_path):
    config = tmp_path / "bootbot.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[limits]\nmax_patches = 2\n')
    return settings_module.load(configuration.load(config))


@pytest.mark.parametrize("files, count, verdict, says", [
    (("Documentation/index.rst",), 1, SKIP, "the series touches no boot path"),
    (("net/core/dev.c", "xen/common/sched/core.c"), 1, SKIP, "the series fits no tree bootbot knows"),
    (("arch/x86/boot/main.c",), 3, REFUSED, "3 patches, more than the 2 allowed"),
])
def test_what_is_refused_or_skipped_needs_no_tree_and_still_leaves_a_result(settings, files, count, verdict, says):
    folder = check.check(series(count, files), settings)   # no tree is configured: none is needed
    outcome = folders.read(folder)
    assert outcome.verdict == verdict and outcome.detail == [says] and outcome.builds == []
    assert folder.parent == settings.state.results


def test_an_entry_that_fails_once_then_passes_is_flaky_never_a_regression(tmp_path, folder):
    parts = Recorded(folder, 2, {("c2", "pvh"): [FAIL, PASS]})
    outcome = decide(tmp_path, parts, 2, entries=("bios", "pvh"))
    assert outcome.verdict == FLAKY and outcome.culprit is None and outcome.regressed == []
    assert outcome.entries["pvh"].status == FLAKY
    assert [a["status"] for a in outcome.entries["pvh"].attempts] == [FAIL, PASS]
    assert outcome.entries["pvh"].reason == "fail: the deciding line"   # the attempt that failed is quoted
    report = text.text(outcome, folder, "bootbot <b@example.org>")
    assert report.startswith("bootbot: FLAKY") and "Reported-by" not in report and "fail, pass" in report


def test_a_failure_counts_only_when_it_repeats_and_a_pass_ends_the_tries(tmp_path, folder):
    parts = Recorded(folder, 1, {("c1", "pvh"): FAIL})
    outcome = decide(tmp_path, parts, 1)
    assert outcome.verdict == REGRESSION and parts.booted.count(("c1", "pvh")) == 3
    passing = Recorded(tmp_path / "passing", 1)
    (tmp_path / "passing").mkdir()
    decide(tmp_path / "p", passing, 1)
    assert passing.booted.count(("c1", "pvh")) == 1


def test_a_step_of_the_culprit_search_that_flips_names_no_patch(tmp_path, folder):
    parts = Recorded(folder, 3, {**breaks("pvh", 2, 3), ("c1", "pvh"): [TIMEOUT, PASS]})
    outcome = decide(tmp_path, parts, 3)
    assert outcome.verdict == REGRESSION and outcome.regressed == ["pvh"] and outcome.culprit is None
    assert outcome.detail == ["pvh with patches 1-1: flaky, with the series: fail",
                              "the failure is intermittent in the culprit search: no patch is named"]


def test_a_step_that_fails_another_way_names_no_patch(tmp_path, folder):
    parts = Recorded(folder, 3, {**breaks("pvh", 2, 3), ("c1", "pvh"): TIMEOUT})
    outcome = decide(tmp_path, parts, 3)
    assert outcome.culprit is None and outcome.detail[0] == "pvh with patches 1-1: timeout, with the series: fail"


def test_a_patch_that_breaks_the_build_only_midway_is_not_blamed_for_a_boot(tmp_path, folder):
    parts = Recorded(folder, 3, breaks("pvh", 3, 3), broken_builds=["c1"])
    outcome = decide(tmp_path, parts, 3)
    assert outcome.verdict == REGRESSION and outcome.culprit is None
    assert outcome.detail[0] == "patches 1-1 do not build (a later patch mends it)"


def test_limits_follow_a_base_that_boots_slowly_now(tmp_path, folder):
    class Slow(Recorded):
        def boot(self, built, entries, phase, attempt, limits):
            results = super().boot(built, entries, phase, attempt, limits)
            return [BootResult(**{**r.__dict__, "seconds": 100.0}) if phase == "base" else r for r in results]
    parts = Slow(folder, 1, {("c1", "pvh"): FAIL})
    decide(tmp_path, parts, 1)
    assert parts.limits[1]["pvh"] == (1000.0, 300.0)   # the series, after the base took 100 s here
    assert parts.limits[2]["pvh"] == (1000.0, 300.0)   # and its retry


def test_only_stable_base_results_are_cached(tmp_path):
    for name, played, cached in [("flip", [FAIL, PASS], False), ("broken", FAIL, True), ("fine", PASS, True),
                                 ("fails-then-hangs", [FAIL, TIMEOUT], False)]:
        folder = tmp_path / name
        folder.mkdir()
        decide(folder, Recorded(folder, 1, {(BASE, "pvh"): played}), 1)
        assert (folder / "cache" / "pvh").exists() == cached, name


def test_a_series_failing_beside_a_base_that_flips_is_flaky_not_blamed(tmp_path, folder):
    parts = Recorded(folder, 2, {(BASE, "pvh"): [FAIL, PASS], **breaks("pvh", 1, 2)})
    outcome = decide(tmp_path, parts, 2)
    assert outcome.verdict == FLAKY and outcome.culprit is None
    assert outcome.detail == ["pvh passed and failed, with the series or on the base: nothing is blamed on the series"]
