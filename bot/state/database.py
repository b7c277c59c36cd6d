"""The list bot's database: one SQLite file, changed a transaction at a time, its tables made and
upgraded by numbered migrations. Only the modules of bot/state/ read or write it."""
from __future__ import annotations

import errno
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.state import migrations


class StateFull(Exception):
    """The disk under state/ is full: the step that hit it was rolled back, and the cycle stopped."""


class Database:
    def __init__(self, path: Path, readonly: bool = False):
        """`readonly`: a reader beside the bot (`bootbot status`, the pages), never its writer; a
        database the bot has not made yet reads as an empty one."""
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False) if path.exists() \
                else sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # serve's scheduler runs each cycle in a worker thread; cycles never overlap, so one
            # connection may pass between threads.
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")   # a reply recorded is a reply kept
        self.db.row_factory = sqlite3.Row
        if not (readonly and path.exists()):
            migrations.migrate(self)

    @contextmanager
    def transaction(self):
        """One transaction; one begun inside another is part of it, so that the steps of one
        module join a caller's that spans several tables."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")   # on a full disk, often this is what fails (WAL pages are written here)
        except BaseException:
            if self.db.in_transaction:   # SQLite may have rolled back by itself (disk full, I/O error)
                self.db.execute("ROLLBACK")
            raise

    @contextmanager
    def savepoint(self):
        """A step inside a transaction, undone alone when it raises (and the error raised on), so
        that the transaction can go on without it."""
        self.execute("SAVEPOINT step")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:   # SQLite may have rolled back the whole (disk full, I/O error)
                self.db.execute("ROLLBACK TO step")
                self.db.execute("RELEASE step")
            raise
        self.db.execute("RELEASE step")

    def rows(self, sql: str, *args) -> list[sqlite3.Row]:
        return self.db.execute(sql, args).fetchall()

    def one(self, sql: str, *args) -> sqlite3.Row | None:
        return self.db.execute(sql, args).fetchone()

    def row(self, sql: str, *args) -> sqlite3.Row:
        """The row a query must find (a record by its id); LookupError when there is none."""
        found = self.db.execute(sql, args).fetchone()
        if found is None:
            raise LookupError(f"no row for {sql} {args}")
        return found

    def value(self, sql: str, *args) -> Any:
        """The first value of a query that always has a row (a COUNT, a MIN)."""
        return self.row(sql, *args)[0]

    def counts(self, table: str) -> dict[str, int]:
        """How many rows of `table` are in each state."""
        return {r[0]: r[1] for r in self.db.execute(f"SELECT state, COUNT(*) FROM {table} GROUP BY state")}

    def execute(self, sql: str, *args) -> sqlite3.Cursor:
        """A statement that changes something, inside a transaction of the caller's."""
        assert self.db.in_transaction, "changes are made in a transaction"
        return self.db.execute(sql, args)

    def close(self) -> None:
        self.db.close()


def full(error: BaseException) -> bool:
    """Whether `error` says the disk is full, in SQLite's words or the system's."""
    if isinstance(error, sqlite3.OperationalError):
        return error.sqlite_errorcode == sqlite3.SQLITE_FULL
    return isinstance(error, OSError) and error.errno == errno.ENOSPC


def now() -> float:
    return time.time()
