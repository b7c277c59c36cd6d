"""The console corpus (tests/data/labels.toml): every log judged as labelled, fast. Failing logs
fail on their line, with the kind of failure they show; logs of boots that got to userspace pass."""
from __future__ import annotations

import re
import tomllib

import pytest

from bot.boots.console import Console
from conftest import DATA, PATTERNS

LABELS = tomllib.loads((DATA / "labels.toml").read_text())
ANY_MARKER = re.compile("bootbot: userspace reached, nonce [0-9a-f]+")


def judge(name: str):
    success = LABELS[name].get("success")
    console = Console(re.compile(success) if success else ANY_MARKER, PATTERNS)
    for line in (DATA / name).read_bytes().decode("utf-8", "replace").splitlines():
        decision = console.feed(line)
        if decision:
            return decision
    return None


@pytest.mark.parametrize("name", sorted(LABELS))
def test_each_console_is_judged_as_labelled(name):
    label, decision = LABELS[name], judge(name)
    assert decision is not None, f"{name}: nothing decided"
    assert (decision.status, decision.kind) == (label["status"], label["kind"]), decision
    assert label["line"] in decision.reason, decision.reason


def test_every_console_in_the_corpus_is_labelled():
    logs = {str(p.relative_to(DATA)) for p in DATA.rglob("*.log")}
    assert logs <= set(LABELS), sorted(logs - set(LABELS))
