"""Workspaces on the tiny tree: which base a series applies to, and checks running side by side."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.changes import series as series_module
from bot.trees import workspace
from bot.trees.workspace import ApplyFailed
from bot.verdicts.words import LabError
from tiny_tree import git, mbox, patches


def test_base_commit_when_the_tree_has_it_else_the_branch(repo):
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "Documentation/old.rst").write_text("newer\n")
    git(repo, "commit", "-q", "-am", "docs: newer")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert workspace.resolve_base(repo, first, "master").commit == first
    assert workspace.resolve_base(repo, first, "master").how == "its base-commit"
    assert workspace.resolve_base(repo, "0" * 40, "master") == \
        workspace.Base(head, "the head of master: its base-commit is not in the tree")
    assert workspace.resolve_base(repo, None, "master").commit == head
    with pytest.raises(LabError, match="neither base-commit"):
        workspace.resolve_base(repo, "0" * 40, "no-such-branch")
    with pytest.raises(LabError, match="not a git tree"):
        workspace.resolve_base(repo / "arch", None, "master")


def test_a_series_without_a_known_base_goes_where_its_files_are_as_it_found_them(repo, tmp_path):
    """Made on an older commit, without base-commit: it applies on the newest commit whose
    main.c is the one the patches changed, not on the head, where main.c has moved on."""
    series_module.configure_b4("http://127.0.0.1:9/unused")
    made_on = git(repo, "rev-parse", "HEAD").strip()
    mails = patches(repo, tmp_path / "p", 1, count=2)
    (repo / "Documentation/old.rst").write_text("newer\n")
    git(repo, "commit", "-q", "-am", "docs: newer")
    still = git(repo, "rev-parse", "HEAD").strip()   # main.c as the series found it, the newest such
    (repo / "arch/x86/boot/main.c").write_text("int main;\nint moved_on;\n")
    git(repo, "commit", "-q", "-am", "x86/boot: move on")
    series = series_module.read_mbox(mbox(tmp_path / "s.mbox", mails[1:]))
    assert series.blobs and series.blobs[0][0] == "arch/x86/boot/main.c"
    for wanted in (None, "0" * 40):
        base = workspace.resolve_base(repo, wanted, "master", series.blobs)
        assert base.commit == still != made_on and base.how.startswith("guessed")
    with workspace.acquire(repo, tmp_path / "ws", slots=1) as ws:
        ws.checkout(base.commit)
        assert len(ws.apply(series.am_mbox)) == 2


def test_the_base_guess_ignores_files_an_earlier_patch_made(repo, tmp_path):
    """Patch 1 creates a file and patch 2 changes it: patch 2's blob is patch 1's work, which no
    commit of the tree holds; the guess goes by the other files."""
    series_module.configure_b4("http://127.0.0.1:9/unused")
    made_on = git(repo, "rev-parse", "HEAD").strip()
    (repo / "arch/x86/boot/new.c").write_text("int made;\n")
    (repo / "arch/x86/boot/main.c").write_text("int main;\nint step;\n")
    git(repo, "add", "arch/x86/boot/new.c")
    git(repo, "commit", "-q", "-am", "x86/boot: make new.c")
    (repo / "arch/x86/boot/new.c").write_text("int made;\nint changed;\n")
    git(repo, "commit", "-q", "-am", "x86/boot: change new.c")
    made = git(repo, "format-patch", "-o", str(tmp_path / "p"), f"{made_on}..HEAD").split()
    git(repo, "reset", "-q", "--hard", made_on)
    series = series_module.read_mbox(mbox(tmp_path / "s.mbox", [Path(m) for m in made]))
    assert [path for path, _ in series.blobs] == ["arch/x86/boot/main.c"]
    base = workspace.resolve_base(repo, None, "master", series.blobs)
    assert base.commit == made_on and base.how.startswith("guessed")


def test_checks_at_once_take_different_workspaces(repo, tmp_path):
    with workspace.acquire(repo, tmp_path / "ws", slots=2) as one, \
            workspace.acquire(repo, tmp_path / "ws", slots=2) as other:
        assert one.source != other.source and one.build != other.build
        assert (one.source / "arch/x86/boot/main.c").exists() and (other.source / "arch/x86/boot/main.c").exists()
    with workspace.acquire(repo, tmp_path / "ws", slots=2) as again:
        assert again.source == one.source   # kept, so its build folder stays warm


def test_apply_names_the_patch_that_does_not_apply(repo, tmp_path):
    mails = patches(repo, tmp_path / "p", 1, count=2)
    second = mails[2].read_text().replace(" int main;\n", " int not_there;\n")
    mbox = (mails[1].read_text() + second).encode()
    with workspace.acquire(repo, tmp_path / "ws", slots=1) as ws:
        ws.checkout("master")
        with pytest.raises(ApplyFailed) as failed:
            ws.apply(mbox)
        assert failed.value.index == 2
        assert git(ws.source, "rev-parse", "HEAD") == git(repo, "rev-parse", "master")   # am aborted
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
        assert git(ws.source, "status", "--porcelain", "--ignored") == ""
    assert list(outside.iterdir()) == []
