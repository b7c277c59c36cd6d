"""bot/state/migrations.py: a new database gets every migration; an older one what it lacks."""
from __future__ import annotations

import sqlite3

from bot.state import migrations
from bot.state.database import Database


def test_a_new_database_has_had_every_migration(tmp_path):
    made = Database(tmp_path / "bootbot.sqlite3")
    assert made.one("PRAGMA user_version")[0] == len(migrations.MIGRATIONS)
    assert "error_kind" in {c["name"] for c in made.rows("PRAGMA table_info(job)")}
    made.close()
    Database(tmp_path / "bootbot.sqlite3").close()   # and opens again as it is


def test_an_old_database_gets_the_new_columns_a_job_of_its_own_and_its_lab_errors_named(tmp_path):
    path = tmp_path / "bootbot.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE job (id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL, command_msgid TEXT UNIQUE, "
                    "entries TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
                    "verdict TEXT, created REAL NOT NULL, error TEXT)")
        old.execute("INSERT INTO job (series_id, state, created, error) VALUES (1, 'queued', 0, 'LabError: no tree')")
        old.execute("INSERT INTO job (series_id, state, created, error) VALUES (2, 'queued', 0, "
                    "'RuntimeError: on w1: LabError: no tree')")
        old.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL UNIQUE REFERENCES job(id))")
    held = Database(path)
    assert [tuple(r) for r in held.rows("SELECT series_id, state, push_id, error_kind FROM job")] == \
        [(1, "queued", None, "lab"), (2, "queued", None, "lab")]
    # remade, as a job may now be a branch's (series_id NULL); the outbox still refers to it by name
    assert not next(c["notnull"] for c in held.rows("PRAGMA table_info(job)") if c["name"] == "series_id")
    assert "REFERENCES job(id)" in held.one("SELECT sql FROM sqlite_master WHERE name = 'outbox'")["sql"]
    assert held.one("PRAGMA user_version")[0] == len(migrations.MIGRATIONS)
    held.close()
