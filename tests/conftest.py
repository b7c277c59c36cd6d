"""Shared fixtures, and the tiers. Real components (QEMU, firmware, Xen, a stock kernel) are
required: when one is missing the test fails, saying what to install; it is never skipped.

The tests are in tiers, a folder each, marked by it: unit (in-process: no server, no QEMU, in
seconds), system (real servers on loopback), boot (QEMU and builds), image (the container image).
`scripts/test --fast` runs the unit tier; tests/unit/conftest.py holds it to its word."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# the helper modules' asserts say what failed, as the tests' own do
pytest.register_assert_rewrite("harness", "tiny_tree", "trees")
from harness import DATA, ROOT, cli  # noqa: F401  (DATA, ROOT: for the tests that import them from here)

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


TIERS = ("unit", "system", "boot", "image")


def pytest_collection_modifyitems(items):
    """Each test marked with its tier (its folder under tests/); the cold-path tests first, so
    that they meet the session's workspaces still empty."""
    for item in items:
        tier = Path(item.path).relative_to(Path(__file__).parent).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test lives in a tier's folder: {', '.join(TIERS)}")
        item.add_marker(tier)
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
        boot_json = ["--json", str(json_file)] if args and args[0] == "boot" and "--json" not in args else []
        return Run(cli(*args, *boot_json, config=config_file), json_file)
    return run
