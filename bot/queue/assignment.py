"""What a job's check is given, here or on a worker (an Assignment, sent as JSON), and how an
attempt that gave no verdict is told (failure_of): the typed API between the bot and its workers."""
from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass, field

from bot.changes.change import Change, from_json, to_json
from bot.changes.series import SeriesError
from bot.config import ConfigError
from bot.sources import Unreachable
from bot.state.jobs import Failure
from bot.words import LabError


@dataclass(frozen=True)
class Fetch:
    """Where a worker fetches a branch's commits from, into its own tree of `kind`."""
    url: str
    branch: str
    head: str
    kind: str


@dataclass(frozen=True)
class Assignment:
    job: int
    change: Change
    only: list[str] | None       # the entries a retest names; None: those the change touches
    named: str                   # how the reproduce line names the change (a Message-ID); "": by its commits
    origin: dict = field(default_factory=dict)   # where it came from, for pages: source, archive, link
    fetch: Fetch | None = None   # a branch's commits: where a worker gets them
    max_starts: int = 3          # a worker gives up a check started this often (the bot's max_attempts)

    def to_json(self) -> dict:
        return {**asdict(self), "change": to_json(self.change)}

    @staticmethod
    def from_json(data: dict) -> Assignment:
        fetch = Fetch(**data["fetch"]) if data.get("fetch") else None
        return Assignment(**{**data, "change": from_json(data["change"]), "fetch": fetch})


def failure_of(error: BaseException) -> tuple[Failure, str]:
    """How an attempt that raised instead of giving a verdict is recorded: its kind, and what it
    says. The lab's failure and an unreadable change in one line; anything else is a bug of
    bootbot's, told with its traceback."""
    line = " ".join(f"{type(error).__name__}: {error}".split())
    if isinstance(error, LabError):
        return Failure.LAB, line
    if isinstance(error, (SeriesError, Unreachable, ConfigError)):   # its change cannot be read (now)
        return Failure.UNREADABLE, line
    return Failure.BUG, "".join(traceback.format_exception(error)).strip()
