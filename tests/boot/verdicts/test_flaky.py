"""Verdicts to trust, with real boots: a boot that fails once is not blamed, a base that times out
once is not cached (bot/verdicts/check.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import trees
from conftest import DECLARED

PVH_C = "arch/x86/platform/pvh/enlighten.c"
PVH_ANCHOR = "#include <xen/interface/hvm/start_info.h>\n"

# A QEMU that misbehaves once, at the run folder named: bootbot boots an entry's first attempt in
# boots/<phase>/<entry>, its next ones in <entry>.2 ...; the sandbox starts it there.
WRAPPER = """#!/usr/bin/python3
import os, sys
args = sys.argv[1:]
if os.getcwd().endswith("{folder}"):
    {misbehave}
os.execv("/usr/bin/qemu-system-x86_64", ["qemu-system-x86_64", *args])
"""
PANIC = 'args[args.index("-append") + 1] += " rdinit=/nonexistent"'
HANG = 'os.execv("/usr/bin/sleep", ["sleep", "600"])'


def wrapper(tmp_path: Path, folder: str, misbehave: str) -> Path:
    path = tmp_path / "qemu-once"
    path.write_text(WRAPPER.format(folder=folder, misbehave=misbehave))
    path.chmod(0o755)
    return path


def check(tmp_path: Path, config: Path) -> dict:
    mbox = trees.make_series(trees.linux(), tmp_path / "series", [
        ("x86/pvh: comment the entry", {PVH_C: trees.add_after(PVH_ANCHOR, "/* bootbot trust test */\n")})])
    run = trees.Check(mbox, trees.linux(), config, tmp_path / "outcome.json", timeout=1200)
    assert run.json is not None, run.stdout + run.stderr
    return {**run.json, "code": run.code, "stdout": run.stdout}


def test_a_boot_that_fails_once_is_flaky_never_a_regression(tmp_path, workspaces):
    config = tmp_path / "bootbot.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[build]\ndir = "{workspaces}"\n'
                      f'[lab]\nqemu = "{wrapper(tmp_path, "/boots/series/pvh", PANIC)}"\n')
    outcome = check(tmp_path, config)
    assert outcome["verdict"] == "flaky" and outcome["code"] == 0 and outcome["culprit"] is None
    pvh = outcome["entries"]["pvh"]
    assert pvh["status"] == "flaky" and [a["status"] for a in pvh["attempts"]] == ["fail", "pass"]
    assert "Kernel panic - not syncing" in pvh["reason"]
    assert outcome["stdout"].startswith("bootbot: FLAKY") and "Reported-by" not in outcome["stdout"]


def test_a_base_boot_that_times_out_once_is_not_cached(tmp_path, workspaces):
    checks = tmp_path / "checks"   # pvh falls silent for 6 s at most, so that the hang ends soon
    shutil.copytree(DECLARED.folder, checks)
    entries = checks / "entries" / "linux.toml"
    entries.write_text(entries.read_text().replace('[entries.pvh]\n', '[entries.pvh]\nsilence = 6\n'))
    config = tmp_path / "bootbot.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[build]\ndir = "{workspaces}"\n'
                      f'[checks]\ndir = "{checks}"\n'
                      f'[lab]\nqemu = "{wrapper(tmp_path, "/boots/base/pvh", HANG)}"\n')
    outcome = check(tmp_path, config)
    assert outcome["verdict"] == "pass", outcome["stdout"]
    assert [a["status"] for a in outcome["entries"]["pvh"]["base_attempts"]] == ["timeout", "pass"]
    cached = {p.name for p in (tmp_path / "state" / "cache" / "baseline").glob("*/*")}
    assert cached == {"xen-pvh"}   # the base's pvh flipped: nothing lasting to keep
