"""Shared fixtures. Real components (QEMU, firmware, Xen, a stock kernel) are required:
when one is missing the test fails, saying what to install; it is never skipped."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot import declarations

# git as on a new machine: no identity of the user's. A fresh machine's git knows none, and
# bootbot's git commands must not need one (a `git am --abort` did, failing every check there).
os.environ.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
for name in ("EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
    os.environ.pop(name, None)

DECLARED = declarations.load()   # the real declarations under checks/
PATTERNS = DECLARED.patterns
LINUX = DECLARED.trees["linux"]
ENTRIES = LINUX.entries


# An entry added by declaration alone: a Linux entry bootbot does not have.
Q35 = '''
[entries.bios-q35]
description = "bzImage through SeaBIOS on a q35 machine"
machine = "q35"
qemu = ["-kernel", "{bzimage}", "-initrd", "{initrd}", "-append", "{cmdline}"]
'''


def with_q35(folder: Path) -> declarations.Declarations:
    """bootbot's declarations copied into `folder`, with the Linux entry bios-q35 added."""
    shutil.copytree(DECLARED.folder, folder)
    entries = folder / "entries" / "linux.toml"
    entries.write_text(entries.read_text() + Q35)
    return declarations.load(folder)


def marker(nonce: str) -> str:
    """What the initramfs's /init prints in a run with `nonce`: the entries' success line."""
    return ENTRIES["bios"].success.replace("{nonce}", nonce)

pytest_plugins = ["tiny_tree"]   # its `repo` fixture: a tiny git tree for fast series tests

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).with_name("data")


def stock_kernel() -> Path:
    kernels = sorted(Path("/boot").glob("vmlinuz-*-amd64"), key=lambda p: [
        int(part) if part.isdigit() else part for part in p.name.replace("-", ".").split(".")])
    if not kernels:
        pytest.fail("no /boot/vmlinuz-*-amd64: run scripts/setup (installs linux-image-amd64)")
    return kernels[-1]


@pytest.fixture(scope="session")
def kernel() -> Path:
    return stock_kernel()


@pytest.fixture(scope="session")
def state(tmp_path_factory) -> Path:
    """One state folder for the whole session, so the KVM probe runs once."""
    return tmp_path_factory.mktemp("state")


def pytest_collection_modifyitems(items):
    """The cold-path tests go first, so that they meet the session's workspaces still empty."""
    items.sort(key=lambda item: item.get_closest_marker("cold") is None)   # a stable sort


@pytest.fixture(scope="session")
def workspaces(tmp_path_factory) -> Path:
    """The session's worktrees and build folders, made empty for every run: the first check
    configures and builds from nothing, as on a new machine; the checks after it build
    incrementally. Removed at the end (a Linux worktree is over a gigabyte)."""
    path = tmp_path_factory.mktemp("workspaces")
    yield path
    # each worktree's .git file names its tree's, which must forget it once it is gone
    pointers = [(src / ".git").read_text().split("gitdir: ", 1)[1].strip() for src in path.glob("*/*/src")]
    shutil.rmtree(path)
    for tree in {Path(pointer).parents[2] for pointer in pointers}:
        subprocess.run(["git", "-C", str(tree), "worktree", "prune"], check=True)


@pytest.fixture(scope="session")
def session_config(state, workspaces, tmp_path_factory) -> Path:
    """The session's state (results, caches) and workspaces: checks share base results and builds."""
    path = tmp_path_factory.mktemp("session") / "bootbot.toml"
    path.write_text(f'[state]\ndir = "{state}"\n[build]\ndir = "{workspaces}"\n')
    return path


@pytest.fixture(scope="session")
def config(state, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "bootbot.toml"
    path.write_text(f'[state]\ndir = "{state}"\n')
    return path


class Run:
    def __init__(self, process: subprocess.CompletedProcess, json_file: Path):
        self.code = process.returncode
        self.stdout = process.stdout
        self.stderr = process.stderr
        self.json = json.loads(json_file.read_text()) if json_file.exists() else None

    def status(self, entry: str) -> str:
        return self.json["entries"][entry]["status"]


@pytest.fixture
def bootbot(config, tmp_path):
    """Runs the real CLI as a user would, returning its exit code, output and JSON."""
    def run(*args: str, config_file: Path = config) -> Run:
        json_file = tmp_path / f"result-{len(list(tmp_path.iterdir()))}.json"
        command = [sys.executable, "-m", "bot.cli", "--config", str(config_file), *args]
        if args and args[0] == "boot" and "--json" not in args:
            command += ["--json", str(json_file)]
        return Run(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600),
                   json_file)
    return run
