"""Reading series with b4: from mboxes made by `git format-patch`, and from a real public-inbox."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import DECLARED
from harness import ROOT, cli
from tiny_tree import git, mbox, patches

from bot.changes import series as series_module
from bot.changes.series import SeriesError


@pytest.fixture(autouse=True)
def b4_settings():
    series_module.configure_b4("http://127.0.0.1:9/unused")


def test_newest_revision_without_cover_letter(repo, tmp_path):
    v1 = patches(repo, tmp_path / "v1", 1)
    v2 = patches(repo, tmp_path / "v2", 2, extra="_again")
    series = series_module.read_mbox(mbox(tmp_path / "both.mbox", v1 + v2))
    assert series.version == 2
    assert [p.subject for p in series.patches] == ["x86/boot: step 1", "x86/boot: step 2"]
    assert [p.index for p in series.patches] == [1, 2]
    assert series.cover_msgid and series.cover_msgid not in [p.msgid for p in series.patches]
    assert len(series.am_messages) == 2 and b"v2_1_again" in series.am_messages[0]
    assert series.base_commit == git(repo, "rev-parse", "HEAD").strip()
    assert series.files == ["arch/x86/boot/main.c"]
    assert series.patches[0].author == "Ann Developer <ann@example.org>"


def test_trailers_from_replies_are_collected(repo, tmp_path):
    parts = patches(repo, tmp_path / "v1", 1)
    first = parts[1].read_text()
    msgid = first.split("Message-ID: ", 1)[1].split("\n", 1)[0] if "Message-ID: " in first else \
        first.split("Message-Id: ", 1)[1].split("\n", 1)[0]
    reply = tmp_path / "reply.eml"
    reply.write_text(f"From reviewer@example.org Mon Jan  1 00:00:00 2024\nFrom: Rita Reviewer <rita@example.org>\n"
                     f"Subject: Re: [PATCH v1 1/2] x86/boot: step 1\nMessage-ID: <reply-1@example.org>\n"
                     f"In-Reply-To: {msgid}\nReferences: {msgid}\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n"
                     f"> quoted\n\nReviewed-by: Rita Reviewer <rita@example.org>\n")
    series = series_module.read_mbox(mbox(tmp_path / "thread.mbox", parts + [reply]))
    assert b"Reviewed-by: Rita Reviewer <rita@example.org>" in series.am_messages[0]


def test_plain_format_patch_without_message_ids_is_accepted(repo, tmp_path):
    base = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "mv", "Documentation/old.rst", "Documentation/new.rst")
    git(repo, "commit", "-q", "-m", "docs: rename")
    made = git(repo, "format-patch", "-o", str(tmp_path / "plain"), f"{base}..HEAD").split()
    series = series_module.read_mbox(mbox(tmp_path / "plain.mbox", [Path(p) for p in made]))
    assert series.patches[0].msgid.endswith("@bootbot")
    assert series.files == ["Documentation/new.rst", "Documentation/old.rst"]


def test_a_missing_patch_is_said(repo, tmp_path):
    parts = patches(repo, tmp_path / "v1", 1, count=3)
    with pytest.raises(SeriesError, match="patch 2/3 of v1 is missing"):
        series_module.read_mbox(mbox(tmp_path / "gap.mbox", [parts[0], parts[1], parts[3]]))


def test_check_takes_the_current_folder_as_the_tree_only_when_it_is_one(repo, tmp_path, config):
    """Run from a git repository of no tree kind (bootbot's own clone, say), or from a tree that
    is no git tree (an unpacked tarball), the configured tree is checked; run from a git tree of
    a kind, that tree."""
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "tools").mkdir()
    (repo / "tools/README").write_text("tools\n")   # linux.git and xen.git both have a tools/
    git(repo, "add", "tools/README")
    git(repo, "commit", "-q", "-m", "tools: a readme")
    [posted] = git(repo, "format-patch", "-o", str(tmp_path / "tools"), f"{base}..HEAD").split()
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    for mark in DECLARED.trees["linux"].marks:   # what makes the tiny tree a Linux tree
        (repo / mark).parent.mkdir(parents=True, exist_ok=True)
        (repo / mark).touch()
    unpacked = tmp_path / "unpacked"
    shutil.copytree(repo, unpacked, ignore=shutil.ignore_patterns(".git"))
    either = "the series fits both the linux and xen trees: give the tree with --tree"
    for cwd, said in [(other, either), (unpacked, either), (repo, "the series touches no boot path")]:
        out = tmp_path / f"{cwd.name}.json"
        run = cli("check", posted, "--json", str(out), config=config, cwd=cwd, timeout=60,
                      env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert run.returncode == 0, run.stderr
        outcome = json.loads(out.read_text())
        assert outcome["detail"] == [said] and str(tmp_path) not in outcome["reproduce"]


def test_a_result_names_no_path_of_the_machine_that_made_it(repo, tmp_path, bootbot):
    """The series file and the tree given by their full paths: outcome.json, reproduce line
    included, holds neither (a worker's folder is read on another machine)."""
    config = tmp_path / "bootbot.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[limits]\nmax_patches = 1\n')
    series = mbox(tmp_path / "series.mbox", patches(repo, tmp_path / "p", 1, count=2))
    run = bootbot("check", str(series), "--tree", str(repo), "--json", str(tmp_path / "out.json"), config_file=config)
    assert run.code == 1 and run.stdout.startswith("bootbot: REFUSED")
    [folder] = (tmp_path / "state" / "results").iterdir()
    written = (folder / "outcome.json").read_text()
    assert json.loads(written)["reproduce"] == "bootbot check series.mbox --tree ~/linux"
    assert str(tmp_path) not in written
