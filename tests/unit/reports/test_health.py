"""The bot's health read from recorded state (bot/reports/health.py): a tree's fetch log as
metrics, as lines for `bootbot status`, and as the alarm of an upstream that cannot be fetched."""
from __future__ import annotations

import json
import time

from prometheus_client.parser import text_string_to_metric_families

from bot import folders
from bot.folders import Outcome, StateFolder
from bot.reports import health

LIMITS = health.Limits(stale_seconds=3600, lab_errors=3, outbox_seconds=7200, tree_stale_seconds=600)


def state_with(tmp_path, **xen_record):
    """A state folder whose xen tree has this fetch record of its upstream "xen"."""
    (tmp_path / "trees").mkdir(parents=True)
    (tmp_path / "trees" / "xen.json").write_text(json.dumps({"path": "/srv/xen", "upstreams": {"xen": {
        "url": "https://xenbits.xen.org/git-http/xen.git", "fetches": 3, "failures": 0, "error": None,
        **xen_record}}}))
    return StateFolder(tmp_path)


def samples(read: health.Health) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(health.metrics(read).decode()) for s in family.samples}


def test_a_tree_fetched_well_shows_its_age_and_raises_nothing(tmp_path):
    now = time.time()
    read = health.read(state_with(tmp_path, first=now - 9000, fetched=now - 100, succeeded=now - 100))
    values = samples(read)
    age = values[("bootbot_tree_fetch_age_seconds", (("tree", "xen"), ("upstream", "xen")))]
    assert 100 <= age < 200 and values[("bootbot_tree_fetch_failing", (("tree", "xen"), ("upstream", "xen")))] == 0
    assert health.alarms(read, LIMITS, now) == {}
    assert "tree xen /srv/xen: xen fetched 100 s ago, last good fetch 100 s ago" in health.lines(read, now)


def test_an_upstream_failing_for_longer_than_the_limit_is_alarmed_once_it_is_stale(tmp_path):
    now = time.time()
    failing = dict(first=now - 9000, fetched=now - 60, succeeded=now - 700, error="git fetch X: timed out")
    read = health.read(state_with(tmp_path, **failing))
    assert samples(read)[("bootbot_tree_fetch_failing", (("tree", "xen"), ("upstream", "xen")))] == 1
    assert health.alarms(read, LIMITS, now) == {"tree-xen-xen": "the xen tree (/srv/xen) has not fetched xen well "
                                                                "for over 600 s: git fetch X: timed out"}
    assert health.alarms(read, LIMITS, now - 200) == {}   # failing, but not for long yet
    never = health.read(state_with(tmp_path / "new", first=now - 900, fetched=now - 60, succeeded=None,
                                   error="git fetch X: refused"))
    assert set(health.alarms(never, LIMITS, now)) == {"tree-xen-xen"}   # since its first try


def test_every_check_counts_the_bots_a_workers_and_bootbot_checks_alike(tmp_path):
    """Checks are counted from the result folders, which every check writes (a `bootbot check`
    has no job in the bot's database; a worker's folder is unpacked there)."""
    state = StateFolder(tmp_path)
    for verdict in ("pass", "regression", "pass"):
        folders.write(folders.new_folder(state.results), Outcome(verdict, {"subject": "s", "version": 1,
                                                                           "author": "a", "patches": []}))
    read = health.read(state)
    assert read.checks == {"pass": 2, "regression": 1} and not state.database.exists()
    assert samples(read)[("bootbot_checks_total", (("verdict", "pass"),))] == 2
    assert "checks: 2 pass, 1 regression; lab errors in a row: 0" in health.lines(read)
