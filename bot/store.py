"""Everything the bot holds, in one SQLite file under state/: archive cursors, messages, series,
jobs and the outbox. Each step of the bot changes it in one transaction, so a crash leaves
either the whole step or none of it: nothing is lost, nothing is done twice."""
from __future__ import annotations

import errno
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

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


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # serve's scheduler runs each cycle in a worker thread; cycles never overlap, so one
        # connection may pass between threads.
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")   # a reply recorded is a reply kept
        self.db.executescript(SCHEMA)
        self._upgrade()

    def _upgrade(self) -> None:
        """A database made by an older bootbot: CREATE TABLE IF NOT EXISTS leaves its tables as they were."""
        if next((c["notnull"] for c in self.rows("PRAGMA table_info(job)") if c["name"] == "series_id"), 0):
            self._remake("job")   # a job was a series' alone: SQLite cannot drop NOT NULL in place
        for table, column, kind in (("job", "error", "TEXT"), ("job", "result", "TEXT"), ("outbox", "sent_at", "REAL"),
                                    ("outbox", "reviewed", "INTEGER NOT NULL DEFAULT 0"), ("message", "source", "TEXT"),
                                    ("job", "push_id", "INTEGER REFERENCES push(id)"),
                                    ("outbox", "made", "REAL"), ("source_poll", "polls", "INTEGER NOT NULL DEFAULT 0"),
                                    ("source_poll", "failures", "INTEGER NOT NULL DEFAULT 0"),
                                    ("job", "task", "TEXT"), ("job", "queue", "TEXT"), ("job", "sent", "REAL"), ("job", "waiting", "TEXT")):
            if column not in {c["name"] for c in self.rows(f"PRAGMA table_info({table})")}:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _remake(self, table: str) -> None:
        """`table` made again as SCHEMA has it, its rows kept (columns it lacked get their defaults)."""
        with self.transaction() as db:
            db.execute("PRAGMA legacy_alter_table = ON")   # the outbox's reference must keep naming `job`
            db.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
            create = SCHEMA[SCHEMA.index(f"CREATE TABLE IF NOT EXISTS {table} ("):]
            db.execute(create[:create.index(");") + 2])
            kept = [c["name"] for c in db.execute(f"PRAGMA table_info(old_{table})")]
            db.execute(f"INSERT INTO {table} ({', '.join(kept)}) SELECT {', '.join(kept)} FROM old_{table}")
            db.execute(f"DROP TABLE old_{table}")
            db.execute("PRAGMA legacy_alter_table = OFF")

    @contextmanager
    def transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")   # on a full disk, often this is what fails (WAL pages are written here)
        except BaseException:
            if self.db.in_transaction:   # SQLite may have rolled back by itself (disk full, I/O error)
                self.db.execute("ROLLBACK")
            raise

    def rows(self, sql: str, *args) -> list[sqlite3.Row]:
        return self.db.execute(sql, args).fetchall()

    def one(self, sql: str, *args) -> sqlite3.Row | None:
        return self.db.execute(sql, args).fetchone()

    def close(self) -> None:
        self.db.close()


class StateFull(Exception):
    """The disk under state/ is full: the step that hit it was rolled back, and the cycle stopped."""


def full(error: BaseException) -> bool:
    """Whether `error` says the disk is full, in SQLite's words or the system's."""
    if isinstance(error, sqlite3.OperationalError):
        return error.sqlite_errorcode == sqlite3.SQLITE_FULL
    return isinstance(error, OSError) and error.errno == errno.ENOSPC


def now() -> float:
    return time.time()
