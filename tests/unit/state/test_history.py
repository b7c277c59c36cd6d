"""The checks' history the pages read: made from the result folders, never ahead of them."""
from __future__ import annotations

import sqlite3

from bot import folders
from bot.folders import EntryOutcome, Outcome, StateFolder
from bot.state.history import Filter, History


def outcome(verdict: str, author: str = "Ann <ann@example.org>") -> Outcome:
    return Outcome(verdict, {"subject": "x86/boot: a change", "version": 1, "author": author, "patches": []},
                   tree="linux", entries={"bios": EntryOutcome("pass", "pass", 4.0, "ok", "", "", False, "tcg")})


def test_a_folder_is_listed_once_its_outcome_is_whole(tmp_path):
    results = tmp_path / "results"
    history = History(StateFolder(tmp_path))
    written = results / "20261130-120000-aaaaaa"   # a check that has begun: its folder, no outcome yet
    written.mkdir()
    assert history.checks(Filter())[0] == []
    folders.write(written, outcome("pass"))   # the results folder itself does not change now
    [row] = history.checks(Filter())[0]
    assert row["folder"] == written.name and row["verdict"] == "pass"
    later = results / "20261130-120001-000000"
    later.mkdir()
    folders.write(later, outcome("regression", "Eve <eve@example.org>"))
    assert [r["folder"] for r in history.checks(Filter(author="Eve <eve@example.org>"))[0]] == [later.name]
    assert [r["folder"] for r in history.checks(Filter(entry="bios"))[0]] == [later.name, written.name]
    assert history.checks(Filter(entry="efi"))[0] == []


def test_a_history_of_another_schema_is_made_again_from_the_folders(tmp_path):
    results = tmp_path / "results"
    folders.write(folders.new_folder(results), outcome("pass"))
    with sqlite3.connect(tmp_path / "results.sqlite3") as old:
        old.execute("CREATE TABLE checked (folder TEXT PRIMARY KEY)")
    assert len(History(StateFolder(tmp_path)).rows()) == 1
