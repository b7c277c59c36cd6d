"""Hostile series are refused before anything is applied (tiny tree: no kernel needed)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_tree import git, patches

from bot.changes import guard
from bot.changes import series as series_module
from bot.changes.change import Change

LIMITS = guard.SeriesLimits(max_patches=100, max_series_bytes=5 << 20, max_binary_bytes=1 << 20)


@pytest.fixture(autouse=True)
def b4_settings():
    series_module.configure_b4("http://127.0.0.1:9/unused")


def read(path: Path, parts: list[Path], edit=lambda text: text) -> Change:
    path.write_text(edit("".join(p.read_text() for p in parts)))
    return series_module.read_mbox(path)


def committed(repo: Path, out: Path, make) -> list[Path]:
    """Mails of one commit made by `make(repo)`, as `git format-patch --binary` writes them."""
    base = git(repo, "rev-parse", "HEAD").strip()
    make(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a change")
    made = git(repo, "format-patch", "--binary", "-o", str(out), f"{base}..HEAD").split()
    git(repo, "reset", "-q", "--hard", base)
    return [Path(p) for p in made]


def test_an_ordinary_series_passes(repo, tmp_path):
    assert guard.refusal(read(tmp_path / "s.mbox", patches(repo, tmp_path / "p", 1)), LIMITS) is None


@pytest.mark.parametrize("path, says", [
    ("../outside.c", "outside the tree"),
    ("arch/../../outside.c", "outside the tree"),
    ("/etc/passwd", "absolute path"),
    (".git/hooks/post-checkout", "git's own files"),
    ("arch/.git/config", "git's own files"),
])
def test_paths_outside_the_tree_or_into_git_are_refused(repo, tmp_path, path, says):
    series = read(tmp_path / "s.mbox", patches(repo, tmp_path / "p", 1, count=1, cover=False),
                  lambda text: text.replace("arch/x86/boot/main.c", path))
    assert says in guard.refusal(series, LIMITS)


def test_a_symbolic_link_is_refused(repo, tmp_path):
    mails = committed(repo, tmp_path / "p", lambda r: os.symlink("/etc/passwd", r / "arch/x86/boot/link"))
    assert "symbolic link" in guard.refusal(read(tmp_path / "s.mbox", mails), LIMITS)


def test_an_oversized_binary_blob_is_refused(repo, tmp_path):
    mails = committed(repo, tmp_path / "p", lambda r: (r / "arch/x86/boot/blob.bin").write_bytes(os.urandom(2 << 20)))
    assert "binary blob of 2097152 bytes" in guard.refusal(read(tmp_path / "s.mbox", mails), LIMITS)


def test_series_size_and_patch_count_limits(repo, tmp_path):
    series = read(tmp_path / "s.mbox", patches(repo, tmp_path / "p", 1, count=3))
    assert "3 patches, more than the 2" in guard.refusal(series, guard.SeriesLimits(2, 5 << 20, 1 << 20))
    assert "more than the 100 allowed" in guard.refusal(series, guard.SeriesLimits(100, 100, 1 << 20))


def test_check_refuses_and_writes_nothing(repo, tmp_path, bootbot, state):
    hostile = tmp_path / "hostile.mbox"
    read(hostile, patches(repo, tmp_path / "p", 1, count=1, cover=False),
         lambda text: text.replace("Documentation/old.rst", "../escaped.rst").replace("arch/x86/boot/main.c", "../escaped.c"))
    config = tmp_path / "bootbot.toml"
    config.write_text(f'[state]\ndir = "{state}"\n[build]\ndir = "{tmp_path / "workspaces"}"\n')
    run = bootbot("check", str(hostile), "--tree", str(repo), config_file=config)
    assert run.code == 1, run.stderr
    assert run.stdout.startswith("bootbot: REFUSED") and "outside the tree: ../escaped.c" in run.stdout
    assert not (tmp_path / "workspaces").exists() and not (tmp_path / "escaped.c").exists()
