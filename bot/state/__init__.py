"""Everything the list bot holds, in one SQLite file (the state folder's bootbot.sqlite3), reached
only through these modules, one per table (or two that go together):

    database.py    the connection; transactions (one begun inside another joins it)
    migrations.py  the tables, made and changed by numbered migrations
    messages.py    mail from every source, stored once
    series.py      mailed series and their patches
    pushes.py      branches' new heads
    jobs.py        checks to run, and how each attempt ended
    outbox.py      replies, held, pending or sent
    sources.py     each source's cursors and polls
    notices.py     what the operator was told once
and, in a database of its own, a cache of the result folders for the pages (history.py).

Each step of the bot is one transaction, so that a crash leaves the whole step or none of it."""
from __future__ import annotations

from pathlib import Path

from bot.state.database import Database, StateFull, full, now
from bot.state.jobs import JobTable
from bot.state.messages import MessageTable
from bot.state.notices import NoticeTable
from bot.state.outbox import Outbox
from bot.state.pushes import PushTable
from bot.state.series import SeriesTable
from bot.state.sources import SourceTable

__all__ = ["State", "StateFull", "full", "now"]


class State:
    def __init__(self, path: Path, readonly: bool = False):
        self.database = Database(path, readonly)
        self.messages = MessageTable(self.database)
        self.series = SeriesTable(self.database)
        self.pushes = PushTable(self.database)
        self.jobs = JobTable(self.database)
        self.outbox = Outbox(self.database)
        self.sources = SourceTable(self.database)
        self.notices = NoticeTable(self.database)

    def transaction(self):
        """One transaction over every table: the steps taken in it are kept together or not at all."""
        return self.database.transaction()

    def close(self) -> None:
        self.database.close()
