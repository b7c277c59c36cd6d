"""Workspaces on the tiny tree: applying a series, and checks running side by side (where a series
applies: tests/test_base.py)."""
from __future__ import annotations

import shutil

import pytest
from tiny_tree import git, patches

from bot.trees import workspace
from bot.trees.workspace import ApplyFailed


def test_checks_at_once_take_different_workspaces(repo, tmp_path):
    with workspace.acquire(repo, tmp_path / "ws", slots=2) as one, \
            workspace.acquire(repo, tmp_path / "ws", slots=2) as other:
        assert one.worktree != other.worktree and one.build != other.build
        assert (one.worktree / "arch/x86/boot/main.c").exists() and (other.worktree / "arch/x86/boot/main.c").exists()
    with workspace.acquire(repo, tmp_path / "ws", slots=2) as again:
        assert again.worktree == one.worktree   # kept, so its build folder stays warm


def test_apply_names_the_patch_that_does_not_apply(repo, tmp_path):
    mails = patches(repo, tmp_path / "p", 1, count=2)
    second = mails[2].read_text().replace(" int main;\n", " int not_there;\n")
    mbox = (mails[1].read_text() + second).encode()
    with workspace.acquire(repo, tmp_path / "ws", slots=1) as ws:
        ws.checkout("master")
        with pytest.raises(ApplyFailed) as failed:
            ws.apply(mbox)
        assert failed.value.index == 2
        assert git(ws.worktree, "rev-parse", "HEAD") == git(repo, "rev-parse", "master")   # am aborted
        ws.checkout("master")   # and the workspace is usable again
        with pytest.raises(ApplyFailed) as failed:   # git am fails before any patch: none is named
            ws.apply(b"From nobody Mon Sep 17 00:00:00 2001\nSubject: no diff\n\nnothing to apply\n")
        assert failed.value.index is None and failed.value.message


def test_a_patch_writing_through_a_symlink_in_the_tree_writes_nothing_outside(repo, tmp_path):
    """The guard cannot see the tree's links; `git am` refuses to write beyond one, and what its
    failed merge leaves in the worktree is gone at the next checkout."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "arch/x86/boot/link").symlink_to(outside)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a link out of the tree")
    evil = """From: Mallory <m@example.org>
Subject: [PATCH] x86/boot: a new file
Date: Thu, 26 Nov 2026 10:00:00 +0000

---
diff --git a/arch/x86/boot/link/new.c b/arch/x86/boot/link/new.c
new file mode 100644
--- /dev/null
+++ b/arch/x86/boot/link/new.c
@@ -0,0 +1 @@
+int pwned;
"""
    with workspace.acquire(repo, tmp_path / "ws", slots=1) as ws:
        ws.checkout("master")
        with pytest.raises(ApplyFailed):
            ws.apply(evil.encode())
        ws.checkout("master")
        assert git(ws.worktree, "status", "--porcelain", "--ignored") == ""
    assert list(outside.iterdir()) == []


def test_a_tree_cloned_again_at_its_path_gets_its_workspaces_made_again(repo, tmp_path):
    """The operator made the tree anew (`bootbot trees init` after a wipe): the worktrees of the
    old one name a repository that is gone, and are made again, not a traceback."""
    with workspace.acquire(repo, tmp_path / "ws", slots=1) as ws:
        ws.checkout("master")
    moved = repo.rename(tmp_path / "old")
    git(tmp_path, "clone", "-q", str(moved), str(repo))
    shutil.rmtree(moved)
    with workspace.acquire(repo, tmp_path / "ws", slots=1) as ws:
        ws.checkout("master")
        assert (ws.worktree / "arch/x86/boot/main.c").exists()
