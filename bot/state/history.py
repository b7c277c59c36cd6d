"""The checks' history, for the pages and the health: one row per result folder, kept in its own
database (StateFolder.history, results.sqlite3, apart from the list bot's) so that a list's
thousands of checks are listed without reading thousands of files. It is a cache: the folders
stay the truth, a row is added the first time a folder is seen, read from its outcome.json, and
a table of another schema is made again from them."""
from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass

from bot import folders
from bot.folders import StateFolder

SCHEMA = """
CREATE TABLE IF NOT EXISTS checked (
    folder TEXT PRIMARY KEY,       -- its name under state/results/: when it began, then a token
    source TEXT NOT NULL,          -- the source that brought it, "" for `bootbot check`
    tree TEXT NOT NULL,
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    author TEXT NOT NULL,
    link TEXT NOT NULL,            -- its thread in the archive, when known
    verdict TEXT NOT NULL,
    entries TEXT NOT NULL,         -- JSON {entry: [status, seconds]}
    build_seconds REAL NOT NULL    -- of all its builds
);
CREATE INDEX IF NOT EXISTS checked_newest ON checked (folder DESC);
"""
PAGE = 50
VERSION = 1   # of SCHEMA: a table of another is dropped and filled again


@dataclass(frozen=True)
class Filter:
    verdict: str = ""
    tree: str = ""
    entry: str = ""
    author: str = ""


class History:
    def __init__(self, state: StateFolder):
        self.results = state.results
        self.results.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(state.history, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        if self.db.execute("PRAGMA user_version").fetchone()[0] != VERSION:   # a cache: made again from the folders
            self.db.executescript(f"DROP TABLE IF EXISTS checked; PRAGMA user_version = {VERSION};")
        self.db.executescript(SCHEMA)
        self.stamp: int | None = None     # the results folder's mtime when it was last listed
        self.pending: set[str] = set()    # folders listed, not yet in the table
        self.lock = threading.Lock()      # the pages answer a request per thread; one connection

    def refresh(self) -> None:
        """Adds the folders not seen yet. The results folder is listed only when it changed (a new
        folder); a folder still being written (no outcome yet) is looked at again each time."""
        with self.lock:
            self._refresh()

    def _query(self, sql: str, args: tuple) -> list[sqlite3.Row]:
        self.refresh()
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def _refresh(self) -> None:
        stamp = self.results.stat().st_mtime_ns
        if stamp != self.stamp:   # a folder made or removed (pruned): listed again
            self.stamp = stamp
            listed = {f.name for f in self.results.iterdir() if folders.FOLDER.fullmatch(f.name)}
            known = {r[0] for r in self.db.execute("SELECT folder FROM checked")}
            with self.db:
                self.db.executemany("DELETE FROM checked WHERE folder = ?", [(gone,) for gone in known - listed])
            self.pending = (self.pending & listed) | (listed - known)
        rows = []
        for name in list(self.pending):
            folder = self.results / name
            if not (folder / folders.OUTCOME).exists() and folder.is_dir():
                continue
            self.pending.discard(name)
            try:
                rows.append(row(name, folders.read(folder)))
            except (OSError, ValueError, TypeError):   # not a check's folder: not listed
                continue
        if rows:
            with self.db:
                self.db.executemany("INSERT OR IGNORE INTO checked VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def checks(self, wanted: Filter, page: int = 0) -> tuple[list[sqlite3.Row], bool]:
        """A page of checks, newest first, and whether there are more."""
        clauses, args = [], []
        for column in ("verdict", "tree", "author"):
            if getattr(wanted, column):
                clauses.append(f"{column} = ?")
                args.append(getattr(wanted, column))
        if wanted.entry:
            clauses.append("json_extract(entries, '$.' || json_quote(?)) IS NOT NULL")
            args.append(wanted.entry)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM checked {where} ORDER BY folder DESC LIMIT ? OFFSET ?",
                           (*args, PAGE + 1, page * PAGE))
        return rows[:PAGE], len(rows) > PAGE

    def rows(self) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM checked", ())

    def entry(self, tree: str, name: str, count: int = 200) -> list[tuple[str, str, float]]:
        """The entry's last `count` checks, oldest first: folder, status, seconds."""
        rows = self._query("SELECT folder, json_extract(entries, '$.' || json_quote(?)) AS e FROM checked "
                           "WHERE tree = ? AND e IS NOT NULL ORDER BY folder DESC LIMIT ?", (name, tree, count))
        return [(r["folder"], *json.loads(r["e"])) for r in reversed(rows)]


def row(folder: str, outcome: folders.Outcome) -> tuple:
    series, origin = outcome.series, outcome.origin
    return (folder, origin.get("source", ""), outcome.tree or "", series["subject"], series["version"],
            series.get("author", ""), origin.get("link", ""), outcome.verdict,
            json.dumps({name: [e.status, e.seconds] for name, e in outcome.entries.items()}),
            sum(b.seconds for b in outcome.builds))
