"""The path every new machine takes first: `bootbot check` of the bundled example from empty build
folders and an empty state, as scripts/main runs it. Builds were once confined without any test
configuring a kernel from nothing, and the configure step failed on every new machine unseen.

Marked `cold`, so it runs first in the session and meets the session's workspaces empty: the
checks after it then build incrementally in the folders it configured."""
from __future__ import annotations

import json
import subprocess

import pytest
import trees
from harness import EXAMPLE, cli

pytestmark = pytest.mark.cold
STAGES = ["applying 3 patches", "building the base", "configuring Linux", "booting", "on the base",
          "building the series", "with the series", "finding the patch that broke pvh"]


def test_the_bundled_example_is_checked_from_empty_build_folders(workspaces, tmp_path):
    assert not any(workspaces.iterdir()), "the session's workspaces must start empty"
    tree = trees.linux()
    config = tmp_path / "bootbot.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[build]\ndir = "{workspaces}"\n')
    outcome = tmp_path / "outcome.json"
    run = cli("check", str(EXAMPLE), "--tree", str(tree), "--json", str(outcome), config=config, timeout=1400)
    assert run.returncode == 1, run.stdout + run.stderr
    result = json.loads(outcome.read_text())
    assert result["verdict"] == "regression" and result["regressed"] == ["pvh"], run.stdout
    assert result["culprit"]["index"] == 2
    assert "First bad patch: [2/3] x86/pvh: trap early in pvh_start_xen" in run.stdout

    # Not on a terminal, each stage still says itself, in order.
    said = run.stderr
    positions = [said.find(stage) for stage in STAGES]
    assert -1 not in positions and [p for p in positions] == sorted(positions), said

    # Configured in the sandbox, with the worktree left as it was (read-only there).
    [build] = workspaces.glob("*/0/build")
    assert "CONFIG_PVH=y" in (build / ".config").read_text().splitlines()
    source = build.with_name("src")
    assert subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=source, capture_output=True,
                          text=True, check=True).stdout == ""
