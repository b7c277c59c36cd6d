"""The report of a check, read from its result folder alone: a short plain-text mail body."""
from __future__ import annotations

from pathlib import Path

from bot.boots.console import clean
from bot.boots.runner import COMMAND
from bot.reports.result import Outcome
from bot.verdicts.words import APPLY_FAILED, BUILD_FAILED, FLAKY, PASS, REFUSED, REGRESSION, SKIP, fails

CONSOLE_LINES = 20   # of console before the deciding line, when no failure report follows it
CONTEXT_LINES = 8    # before a failure's report, which is quoted whole (up to its bound)


def text(outcome: Outcome, folder: Path, bot_address: str) -> str:
    parts = [_summary(outcome)]
    if outcome.base:
        parts.append(f"Base: {outcome.base[:12]}, {outcome.base_how or 'as given'}.")
    if outcome.entries:
        parts.append(_table(outcome))
    if outcome.culprit:
        p = outcome.culprit
        parts.append(f"First bad patch: [{p['index']}/{len(outcome.series['patches'])}] {p['subject']}\n"
                     f"  Message-ID: <{p['msgid']}>")
    if outcome.detail and outcome.verdict not in (PASS, SKIP, FLAKY):
        parts.append("\n".join(f"  {line}" for line in outcome.detail))
    failed = _first_failed(outcome)
    if failed:
        parts.append(_console(failed, folder / outcome.entries[failed].log, outcome.entries[failed]))
    if outcome.verdict != SKIP:
        parts.append(_reproduce(outcome, folder, failed))
    tag = _TAGS.get(outcome.verdict)
    if tag:   # "| " first, as 0-day does: b4 would take a bare tag line as a trailer of the patch
        parts.append(f"{tag[1]}\n| {tag[0]}: {bot_address}")
    return "\n\n".join(parts) + "\n"


_FIX_TAG = ("Reported-by", "If you fix this in a separate patch (not a new version of this series), "
                           "kindly add the tag below:")
_TAGS = {REGRESSION: _FIX_TAG, BUILD_FAILED: _FIX_TAG,
         PASS: ("Tested-by", "If you want this test recorded in the series, add the tag below by hand:")}


def _summary(outcome: Outcome) -> str:
    s = outcome.series
    version = f" v{s['version']}" if s["version"] > 1 else ""
    count = f" 0/{len(s['patches'])}" if len(s["patches"]) > 1 else ""
    title = f"[PATCH{version}{count}] {s['subject']}"
    if outcome.verdict == PASS:
        booted = ", ".join(outcome.entries)
        return f"bootbot: PASS for {title}\nEvery boot entry the series touches boots as on the base: {booted}."
    if outcome.verdict == SKIP:
        return f"bootbot: SKIP for {title}\nNothing was built or booted: {outcome.detail[0]}."
    if outcome.verdict == FLAKY:
        return f"bootbot: FLAKY for {title}\n{outcome.detail[0][0].upper()}{outcome.detail[0][1:]}."
    if outcome.verdict == REGRESSION:
        return (f"bootbot: REGRESSION in {title}\n"
                f"No longer boots with the series, but does on the base: {', '.join(outcome.regressed)}.")
    if outcome.verdict == APPLY_FAILED:
        return (f"bootbot: APPLY FAILED for {title}\n"
                + (f"Patch {outcome.culprit['index']} does not apply" if outcome.culprit else
                   "The series does not apply (git am named no patch)") + f" on {outcome.base[:12]}.")
    if outcome.verdict == REFUSED:
        return f"bootbot: REFUSED {title}\nThe series was refused before anything was applied or built:"
    if outcome.verdict == BUILD_FAILED:
        return f"bootbot: BUILD FAILED for {title}\nIt builds on the base but not with the series."
    return f"bootbot: ERROR while checking {title}\nThe lab failed, not the series: nothing is blamed on it."


def _table(outcome: Outcome) -> str:
    width = max(len(name) for name in outcome.entries) + 1
    rows = [f"{'entry':<{width}} {'series':<8} {'base':<8} {'seconds':>7}  decided by"]
    for name, e in outcome.entries.items():
        label = name + ("*" if e.experimental else "")
        rows.append(f"{label:<{width}} {e.status:<8} {e.baseline:<8} {e.seconds:>7.1f}  {e.reason}")
    if any(e.experimental for e in outcome.entries.values()):
        rows.append("* experimental: decides the verdict here (boot.strict_experimental)" if outcome.strict_experimental
                    else "* experimental: shown, but does not decide the verdict")
    tried = [f"  {name}: {_boots(e.attempts)} with the series; {_boots(e.base_attempts)} on the base"
             for name, e in outcome.entries.items() if len(e.attempts) > 1 or len(e.base_attempts) > 1]
    if tried:
        rows += ["Booted more than once, in order:", *tried]
    return "\n".join(rows)


def _boots(attempts: list[dict]) -> str:
    return ", ".join(a["status"] for a in attempts)


def _first_failed(outcome: Outcome) -> str | None:
    failing = [n for n, e in outcome.entries.items() if fails(e.status, e.experimental, outcome.strict_experimental)]
    return (outcome.regressed or failing or [None])[0]


def _console(name: str, log: Path, entry) -> str:
    """The console up to the deciding line, then the failure's report (its block) when it made one."""
    try:
        lines = [clean(line) for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return f"Console of {name}: (no log)"
    lines = [line for line in lines if line]
    end = next((i for i, line in enumerate(lines) if line == entry.reason), len(lines))
    before = lines[max(0, end - (CONTEXT_LINES if entry.block else CONSOLE_LINES)):end]
    if entry.block:
        return (f"Console of {name}, up to the {entry.kind} report that decided it:\n"
                + "\n".join(f"  {line}" for line in before) + "\n" + "\n".join(f"> {line}" for line in entry.block))
    excerpt = (before + lines[end:end + 1]) or ["(nothing: the console stayed silent)"]
    return f"Console of {name}, up to the line that decided it:\n" + "\n".join(f"  {line}" for line in excerpt)


def _reproduce(outcome: Outcome, folder: Path, failed: str | None) -> str:
    lines = ["Reproduce:", f"  {outcome.reproduce}"]
    if outcome.build_steps:
        lines += [f"  The {outcome.tree} build, out of tree:", *(f"    {step}" for step in outcome.build_steps)]
    if failed:
        entry = outcome.entries[failed]
        lines += [f"  The files {failed} boots:", *(f"    {name}: {whence}" for name, whence in entry.files.items())]
        boot = (folder / entry.log).parent
        if (boot / COMMAND).exists():
            lines += [f"  QEMU ({failed}), from {boot}:", f"    {(boot / COMMAND).read_text().strip()}"]
    return "\n".join(lines)
