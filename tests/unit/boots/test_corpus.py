"""The console corpus (tests/data/labels.toml): every log judged as labelled, fast. Failing logs
fail on their line, with the kind of failure they show; logs of boots that got to userspace pass."""
from __future__ import annotations

import re
import tomllib

import pytest
from conftest import DATA, PATTERNS
from harness import cli

from bot.boots.console import Console, judge_log

LABELS = tomllib.loads((DATA / "labels.toml").read_text())
ANY_MARKER = re.compile("bootbot: userspace reached, nonce [0-9a-f]+")


def judge(name: str):
    success = LABELS[name].get("success")
    console = Console(re.compile(success) if success else ANY_MARKER, PATTERNS)
    return judge_log(console, (DATA / name).read_bytes().decode("utf-8", "replace"))[0]


@pytest.mark.parametrize("name", sorted(LABELS))
def test_each_console_is_judged_as_labelled(name):
    label, decision = LABELS[name], judge(name)
    assert decision is not None, f"{name}: nothing decided"
    assert (decision.status, decision.kind) == (label["status"], label["kind"]), decision
    assert label["line"] in decision.reason, decision.reason


def test_every_console_in_the_corpus_is_labelled():
    logs = {str(p.relative_to(DATA)) for p in DATA.rglob("*.log")}
    assert logs <= set(LABELS), sorted(logs - set(LABELS))


def test_classify_judges_a_saved_log_as_a_boot_would(tmp_path):
    """`bootbot classify` says the verdict, the deciding line's number and the failure's report;
    lines end at newlines only, as on a live console (a form feed inside a line splits nothing)."""
    log = tmp_path / "console.log"
    captured = (DATA / "bios-panic.log").read_text(errors="replace")
    log.write_text("firmware says \x0c hello\n" + captured)
    run = cli("classify", str(log), "--entry", "bios", timeout=60)
    number = 1 + next(n for n, line in enumerate(captured.split("\n"), 1) if "Kernel panic" in line)
    assert run.returncode == 1, run.stderr
    first, quoted = run.stdout.splitlines()[0], run.stdout.splitlines()[1]
    assert first == f"fail (panic): line {number}" and "Kernel panic - not syncing" in quoted
