"""The report of a check, read from its result folder alone: a short plain-text mail body."""
from __future__ import annotations

import textwrap
from pathlib import Path

from bot.boots.console import clean
from bot.boots.locate import Location
from bot.folders import COMMAND, Outcome
from bot.words import APPLY_FAILED, BUILD_FAILED, COMMITS, FLAKY, NO_BASE, PASS, REFUSED, REGRESSION, SKIP, fails

CONSOLE_LINES = 20   # of console before the deciding line, when no failure report follows it
CONTEXT_LINES = 8    # before a failure's report, which is quoted whole (up to its bound)
WIDTH = 80           # of prose in a list mail
MARK = "=> "         # before the console line that decided a boot


def text(outcome: Outcome, folder: Path, bot_address: str, pages: str = "") -> str:
    """The report; `pages`: where the results pages are (web.url), to link the check's own."""
    parts = [_summary(outcome)]
    if outcome.base:
        parts.append(_wrap(f"Base: {outcome.base[:12]}, {outcome.base_how or 'as given'}."))
    if outcome.entries:
        parts.append(_table(outcome))
    if outcome.culprit:
        parts.append(_first_bad(outcome, outcome.culprit))
    if outcome.detail and outcome.verdict not in (PASS, SKIP, FLAKY):
        parts.append("\n".join(f"  {line}" for line in outcome.detail))
    if outcome.verdict == NO_BASE:
        parts.append(_wrap(_NO_BASE_ADVICE[0]) + "\n" + "\n".join(_NO_BASE_ADVICE[1:]))
    failed = _first_failed(outcome)
    if failed:
        parts.append(console_excerpt(failed, folder / outcome.entries[failed].log, outcome.entries[failed]))
    if outcome.verdict != SKIP:
        parts.append(_reproduce(outcome, folder, failed))
    if pages:
        parts.append("Everything of this check (consoles, attempts, logs):\n"
                     f"  {pages.rstrip('/')}/checks/{folder.name}")
    tag = (_BRANCH_TAGS if outcome.change_kind == COMMITS else _TAGS).get(outcome.verdict)
    if tag and outcome.known_base:   # tested, or broken, on a base that may not be the author's: no tag
        # "| " first, as 0-day does: b4 would take a bare tag line as a trailer of the patch
        parts.append(f"{_wrap(tag[1])}\n| {tag[0]}: {bot_address}")
    return "\n\n".join(parts) + "\n"


# Prose, then commands quoted whole.
_NO_BASE_ADVICE = ("To have it checked, post it with a base-commit line naming the commit it is made on, "
                   "in a branch bootbot follows:",
                   "  git format-patch --base=auto ...   (the branch's upstream set), or --base=COMMIT",
                   "  b4 send                            (b4 prep records the base)")


def _wrap(prose: str, indent: str = "") -> str:
    """Prose at the list's width; a word longer than a line (a path, a command) stays whole."""
    return textwrap.fill(prose, WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


_FIX_TAG = ("Reported-by", "If you fix this in a separate patch (not a new version of this series), "
                           "kindly add the tag below:")
_TAGS = {REGRESSION: _FIX_TAG, BUILD_FAILED: _FIX_TAG,
         PASS: ("Tested-by", "If you want this test recorded in the series, add the tag below by hand:")}
# A branch's commits are applied already: no next version, no test to record in them.
_BRANCH_TAGS = dict.fromkeys((REGRESSION, BUILD_FAILED),
                             ("Reported-by", "If you fix this, kindly add the tag below to the fix:"))


def _first_bad(outcome: Outcome, p: dict) -> str:
    if outcome.change_kind == COMMITS:
        link = [f"Link: {p['link']}"] if p["link"] else []
        said = [f"Author: {p['author']}", f"Committer: {p['committer']}", *link]
        return _wrap(f"First bad commit: {p['commit'][:12]} {p['subject']}", "  ") + "".join(f"\n  {l}" for l in said)
    return (_wrap(f"First bad patch: [{p['index']}/{len(outcome.series['patches'])}] {p['subject']}", "  ")
            + f"\n  Message-ID: <{p['msgid']}>")


def _name(outcome: Outcome, p: dict) -> str:
    """A patch as the list knows it: its subject tag, or a branch's commit id."""
    if outcome.change_kind == COMMITS:
        return f"commit {p['commit'][:12]} ({p['subject']})"
    return f"[PATCH {p['index']}/{len(outcome.series['patches'])}] {p['subject']}"


def _title(outcome: Outcome) -> str:
    series = outcome.series
    if outcome.change_kind == COMMITS:
        return series["subject"]
    version = f" v{series['version']}" if series["version"] > 1 else ""
    count = f" 0/{len(series['patches'])}" if len(series["patches"]) > 1 else ""
    return f"[PATCH{version}{count}] {series['subject']}"


def _summary(outcome: Outcome) -> str:
    title = _title(outcome)
    if outcome.verdict == PASS:
        booted = ", ".join(outcome.entries)
        return f"bootbot: PASS for {title}\n" + _wrap(f"Every boot entry the series touches boots as on the base: "
                                                      f"{booted}.")
    if outcome.verdict == SKIP:
        return f"bootbot: SKIP for {title}\n" + _wrap(f"Nothing was built or booted: {outcome.detail[0]}.")
    if outcome.verdict == FLAKY:
        return f"bootbot: FLAKY for {title}\n" + _wrap(f"{outcome.detail[0][0].upper()}{outcome.detail[0][1:]}.")
    if outcome.verdict == REGRESSION:
        return _regression(outcome, title)
    if outcome.verdict == NO_BASE:
        return (f"bootbot: NO BASE for {title}\n"
                + _wrap("bootbot could not find what the series applies to, and it does not apply where it "
                        "guessed (below): nothing was built or booted, and nothing is said of the series."))
    if outcome.verdict == APPLY_FAILED:
        return (f"bootbot: APPLY FAILED for {title}\n"
                + (f"Patch {outcome.culprit['index']} does not apply" if outcome.culprit else
                   "The series does not apply (git am named no patch)") + f" on {(outcome.base or '')[:12]}.")
    if outcome.verdict == REFUSED:
        return f"bootbot: REFUSED {title}\nThe series was refused before anything was applied or built:"
    if outcome.verdict == BUILD_FAILED:
        if not outcome.known_base:
            return f"bootbot: BUILD FAILED on a guessed base for {title}\n" + _wrap(
                f"It builds on the base but not with the series. {_GUESSED}")
        return f"bootbot: BUILD FAILED for {title}\nIt builds on the base but not with the series."
    return f"bootbot: ERROR while checking {title}\nThe lab failed, not the series: nothing is blamed on it."


_GUESSED = ("The base is a guess (below), maybe not the one the series was made on: what fails may be "
            "missing from the base, not wrong in the series, so no patch is blamed.")


def _regression(outcome: Outcome, title: str) -> str:
    """Which entry broke and at which patch first; then where each died, when it is known."""
    broken = ", ".join(outcome.regressed)
    p = outcome.culprit
    guessed = "" if outcome.known_base else " on a guessed base"
    lines = [_wrap(f"bootbot: REGRESSION: {broken} stops booting at {_name(outcome, p)}" if p else
                   f"bootbot: REGRESSION{guessed}: {broken} stops booting with {title}")]
    for name in outcome.regressed:
        entry = outcome.entries[name]
        if entry.location:
            lines.append(_wrap(f"{name}: {Location(**entry.location)}", "  "))
        if entry.changed:
            made = outcome.series["patches"][entry.changed["patch"] - 1]
            who = (f"commit {made['commit'][:12]}" if outcome.change_kind == COMMITS
                   else f"patch {entry.changed['patch']}")
            lines.append(f"  {who} made that line: {entry.changed['line'].strip()}")
    booted = "boots" if len(outcome.regressed) == 1 else "boot"
    lines.append(_wrap(f"In {title}; {broken} {booted} on the base." + (f" {_GUESSED}" if guessed else "")))
    return "\n".join(lines)


def _table(outcome: Outcome) -> str:
    width = max(len(name) for name in outcome.entries) + 1
    rows = [f"{'entry':<{width}} {'series':<8} {'base':<8} {'seconds':>7}  decided by"]
    same = [name for name, e in outcome.entries.items() if e.status == e.baseline]
    shown = outcome.entries if outcome.verdict == PASS or len(same) == len(outcome.entries) else \
        {name: e for name, e in outcome.entries.items() if name not in same}
    for name, e in shown.items():
        label = name + ("*" if e.experimental else "")
        rows.append(f"{label:<{width}} {e.status:<8} {e.baseline:<8} {e.seconds:>7.1f}  {e.reason}")
    if any(e.experimental for e in shown.values()):
        rows.append("* experimental: decides the verdict here (boot.strict_experimental)" if outcome.strict_experimental
                    else "* experimental: shown, but does not decide the verdict")
    if len(shown) < len(outcome.entries):
        rows.append(f"As on the base: {', '.join(f'{name} ({outcome.entries[name].status})' for name in same)}")
    tried = [f"  {name}: {_boots(e.attempts)} with the series; {_boots(e.base_attempts)} on the base"
             for name, e in shown.items() if len(e.attempts) > 1 or len(e.base_attempts) > 1]
    if tried:
        rows += ["Booted more than once, in order:", *tried]
    return "\n".join(rows)


def _boots(attempts: list[dict]) -> str:
    return ", ".join(a["status"] for a in attempts)


def _first_failed(outcome: Outcome) -> str | None:
    failing = [n for n, e in outcome.entries.items() if fails(e.status, e.experimental, outcome.strict_experimental)]
    return next(iter(outcome.regressed or failing), None)


def console_excerpt(name: str, log: Path, entry) -> str:
    """The last lines before the deciding line, the deciding line marked, then the rest of the
    failure's report (its block) when it made one."""
    try:
        lines = [clean(line) for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return f"Console of {name}: (no log)"
    lines = [line for line in lines if line]
    end = next((i for i, line in enumerate(lines) if line == entry.reason), None)
    if end is None:   # decided by no line: a silence, a reset, a limit
        if not lines:
            return f"Console of {name}: nothing, it stayed silent."
        return f"Console of {name}, its last lines:\n" + "\n".join(f"  {line}" for line in lines[-CONSOLE_LINES:])
    before = lines[max(0, end - (CONTEXT_LINES if entry.block else CONSOLE_LINES)):end]
    after = entry.block[1:] if entry.block else []
    return (f"Console of {name}, up to the line that decided it ({MARK.strip()}):\n"
            + "\n".join([*(f"  {line}" for line in before), f"{MARK}{lines[end]}", *(f"  {line}" for line in after)]))


def _reproduce(outcome: Outcome, folder: Path, failed: str | None) -> str:
    """What a reader runs: bootbot's one line, or by hand the build, the files and QEMU's command
    line, with file names relative to a folder that holds the files."""
    branch = outcome.change_kind == COMMITS
    lines = ["The commits, with git:" if branch else "Reproduce, with bootbot:", f"  {outcome.reproduce}"]
    if outcome.build_steps and outcome.base:
        what = "a commit of them checked out" if branch else f"the series applied on {outcome.base[:12]}"
        lines += [f"{'Then b' if branch else 'Or b'}y hand: {what} ({outcome.tree}), built out of tree:",
                  *(f"  {step}" for step in outcome.build_steps)]
    if outcome.fragment:   # a fragment's lines, a few to a line here: short enough to quote whole
        lines += ["  where the fragment has these lines (one per line in the file):",
                  textwrap.indent(textwrap.fill(" ".join(outcome.fragment), WIDTH - 4, break_long_words=False,
                                                break_on_hyphens=False), "    ")]
    if failed:
        entry = outcome.entries[failed]
        lines += [f"The files {failed} boots:", *(f"  {name}: {whence}" for name, whence in entry.files.items())]
        command = (folder / entry.log).parent / COMMAND
        if command.exists():
            lines += ["and QEMU, from a folder that holds them:", f"  {command.read_text().strip()}"]
    return "\n".join(lines)
