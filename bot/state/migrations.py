"""The database's tables, made and changed by numbered migrations: `PRAGMA user_version` says how
many a database has had; each runs once, in a transaction of its own, in order. A migration is
never changed once released: a new one is added after it."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.state.database import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS source_cursor (
    source TEXT NOT NULL,          -- its name in [[sources]]
    key TEXT NOT NULL,             -- what it follows: an inbox's "epoch N", a query's "since", a branch's "head"
    value TEXT NOT NULL,           -- how far it has read: a commit, a time
    fingerprint TEXT,              -- an inbox epoch's manifest fingerprint when it was fetched
    PRIMARY KEY (source, key)
);
CREATE TABLE IF NOT EXISTS source_poll (
    source TEXT PRIMARY KEY,
    polled REAL,                   -- the last poll, and the last that succeeded
    succeeded REAL,
    new_at REAL,                   -- when it last brought something new, and what
    new_item TEXT,
    error TEXT,                    -- why the last poll failed; NULL once one succeeds
    polls INTEGER NOT NULL DEFAULT 0,      -- how many, and how many of them failed
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS push (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    base TEXT NOT NULL,            -- the head checked before (or the merge base, after a force-push)
    head TEXT NOT NULL,
    state TEXT NOT NULL,           -- waiting, queued, skipped, checked, failed (set aside)
    first_seen REAL NOT NULL,
    UNIQUE (source, head)
);
CREATE TABLE IF NOT EXISTS message (
    msgid TEXT PRIMARY KEY,
    raw BLOB NOT NULL,
    thread TEXT NOT NULL,          -- the thread's root Message-ID (References[0], else itself)
    parent TEXT,                   -- In-Reply-To
    received REAL NOT NULL,
    handled INTEGER NOT NULL DEFAULT 0,
    source TEXT                    -- the source that stored it first: a series' replies follow its policy
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    head TEXT NOT NULL,            -- the cover letter's Message-ID, else the first patch's
    thread TEXT NOT NULL,
    subject TEXT NOT NULL,         -- without tags, to match later revisions
    author TEXT NOT NULL,
    version INTEGER NOT NULL,
    expected INTEGER NOT NULL,
    state TEXT NOT NULL,           -- waiting, queued, skipped, partial, superseded, checked, failed (set aside)
    first_seen REAL NOT NULL,
    UNIQUE (thread, version)       -- a revision of a series is one thread of [PATCH vN M/N] mails
);
CREATE TABLE IF NOT EXISTS patch (
    series_id INTEGER NOT NULL REFERENCES series(id),
    counter INTEGER NOT NULL,
    msgid TEXT NOT NULL,
    PRIMARY KEY (series_id, counter)
);
CREATE TABLE IF NOT EXISTS job (
    id INTEGER PRIMARY KEY,
    series_id INTEGER REFERENCES series(id),   -- a mailed series' check, or
    push_id INTEGER REFERENCES push(id),       -- a branch's new commits'
    command_msgid TEXT UNIQUE,     -- the retest mail it answers; NULL for a new series
    entries TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,           -- queued, running (here), sent (to workers), done, cancelled, failed (given up)
    attempts INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,
    created REAL NOT NULL,
    error TEXT,                    -- why the last attempt ended without a verdict
    result TEXT,                   -- its result folder, under state/results/
    task TEXT,                     -- sent to workers: the task its answer comes back as
    queue TEXT,                    -- the queue of the workers it was sent to
    sent REAL,                     -- when
    waiting TEXT                   -- why it is not sent yet (no worker offers what it needs, ...)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL UNIQUE REFERENCES job(id),   -- exactly one reply per job
    message_id TEXT NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    state TEXT NOT NULL,           -- held (until approved), pending, sent, dropped
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    last_error TEXT,
    sent_at REAL,
    reviewed INTEGER NOT NULL DEFAULT 0,  -- a held reply's copy went to the moderator
    made REAL                             -- when the reply was made (older rows: NULL)
);
CREATE TABLE IF NOT EXISTS notice (
    key TEXT PRIMARY KEY,          -- what the operator was told, once (e.g. the day's reply limit)
    at REAL NOT NULL
);
"""

# Columns an older bootbot's database lacks, made before numbered migrations (CREATE TABLE IF NOT
# EXISTS leaves its tables as they were).
_BEFORE_MIGRATIONS = (
    ("job", "error", "TEXT"), ("job", "result", "TEXT"), ("outbox", "sent_at", "REAL"),
    ("outbox", "reviewed", "INTEGER NOT NULL DEFAULT 0"), ("message", "source", "TEXT"),
    ("job", "push_id", "INTEGER REFERENCES push(id)"), ("outbox", "made", "REAL"),
    ("source_poll", "polls", "INTEGER NOT NULL DEFAULT 0"), ("source_poll", "failures", "INTEGER NOT NULL DEFAULT 0"),
    ("job", "task", "TEXT"), ("job", "queue", "TEXT"), ("job", "sent", "REAL"), ("job", "waiting", "TEXT"),
)


def _tables(db) -> None:
    """1: the tables of bootbot 0.1; a database an older bootbot made gets what they gained."""
    for statement in _statements(SCHEMA):   # executescript would commit the migration's transaction
        db.execute(statement)
    if next((c["notnull"] for c in db.execute("PRAGMA table_info(job)") if c["name"] == "series_id"), 0):
        _remake(db, "job")   # a job was a series' alone: SQLite cannot drop NOT NULL in place
    for table, column, kind in _BEFORE_MIGRATIONS:
        if column not in {c["name"] for c in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _error_kind(db) -> None:
    """2: why a job's last attempt ended, as a word (Failure in bot/state/jobs.py), not a prefix
    of its text: a lab error told by a worker was "RuntimeError: on NAME: LabError: ..."."""
    db.execute("ALTER TABLE job ADD COLUMN error_kind TEXT")
    db.execute("UPDATE job SET error_kind = 'lab' WHERE error LIKE 'LabError:%' OR error LIKE '%: LabError:%'")


MIGRATIONS: list[Callable] = [_tables, _error_kind]


def migrate(database: Database) -> None:
    done = database.db.execute("PRAGMA user_version").fetchone()[0]
    for number, migration in enumerate(MIGRATIONS[done:], done + 1):
        with database.transaction() as db:
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")


def _statements(script: str) -> list[str]:
    """The statements of a script, its comments (which may hold a ';') left out."""
    bare = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    return [s.strip() + ";" for s in bare.split(";") if s.strip()]


def _remake(db, table: str) -> None:
    """`table` made again as SCHEMA has it, its rows kept (columns it lacked get their defaults)."""
    db.execute("PRAGMA legacy_alter_table = ON")   # the outbox's reference must keep naming `job`
    db.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
    create = SCHEMA[SCHEMA.index(f"CREATE TABLE IF NOT EXISTS {table} ("):]
    db.execute(create[:create.index(");") + 2])
    kept = [c["name"] for c in db.execute(f"PRAGMA table_info(old_{table})")]
    db.execute(f"INSERT INTO {table} ({', '.join(kept)}) SELECT {', '.join(kept)} FROM old_{table}")
    db.execute(f"DROP TABLE old_{table}")
    db.execute("PRAGMA legacy_alter_table = OFF")
