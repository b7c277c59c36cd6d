"""Where changes come from: the configuration's [[sources]], each of a kind (inbox, query, branch),
each with its own cursors and poll record (bot/state/sources.py) and reply policy. A poll of one
never holds up the others: a source that cannot be reached keeps its cursor and says why."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import ClassVar

from bot.config import ConfigError
from bot.state import State, full, now
from bot.state.sources import Cursor
from bot.words import EXIT_STATUS, ON_GUESSED_BASE

log = logging.getLogger("bootbot.sources")
_MSGID = re.compile(r"<([^<>\s]+)>")


class Unreachable(Exception):
    """The source could not be read now; its cursor is kept."""


@dataclass
class Source:
    """What every kind has: a name, the state it stores into, and how its changes are answered.
    Each kind has poll(): it takes in what is new and says what ("" when nothing is), or raises
    Unreachable."""
    kind: ClassVar[str]
    reply_all: ClassVar[bool] = False   # answer all the parent mail went to, not only its author and list
    name: str
    state: State
    reply_on: set[str]
    cc: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def where(self) -> str:
        """What it follows, as `bootbot sources` and errors name it."""
        return self.url

    def poll(self) -> str:
        raise NotImplementedError   # each kind's

    def cursor(self, key: str) -> Cursor | None:
        return self.state.sources.cursor(self.name, key)

    def move(self, key: str, value: str, fingerprint: str | None = None) -> None:
        """Moves the cursor, in the caller's transaction: with what it read, or not at all."""
        self.state.sources.move(self.name, key, value, fingerprint)

    def cursors(self) -> dict[str, str]:
        return self.state.sources.cursors(self.name)

    def store(self, raw: bytes) -> bool:
        """Stores a mail once, whichever source brings it; whether it was new."""
        # compat32 reads header values as sent: the default policy parses them, and raises on some
        # ("Message-ID: <@>") or cuts others ("<a,b@c>" reads "<a").
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        msgid = first_msgid(headers.get("Message-ID", ""))
        if not msgid:
            log.warning("message without a Message-ID skipped")
            return False
        parent = first_msgid(headers.get("In-Reply-To", ""))
        references = _MSGID.findall(str(headers.get("References", "")))
        return self.state.messages.add(msgid, raw, references[0] if references else parent or msgid, parent, self.name)


def poll(sources: list[Source]) -> None:
    """Polls each source in turn, recording when, what came, and any error."""
    for source in sources:
        started = now()
        try:
            new, error = source.poll(), None
        except Unreachable as e:
            new, error = "", str(e)
            log.warning("source %s unreachable, cursor kept: %s", source.name, e)
        except Exception as e:   # whatever one source does, the others are polled; its cursor is kept
            if full(e):
                raise
            new, error = "", " ".join(f"{type(e).__name__}: {e}".split())
            log.exception("source %s failed, cursor kept", source.name)
        source.state.sources.polled(source.name, started, error, new)


def first_msgid(header) -> str | None:
    match = _MSGID.search(str(header or ""))
    return match.group(1) if match else None


_KEYS = {"inbox": {"url", "list"}, "query": {"url", "query", "first_days"}, "branch": {"url", "branch", "tree"}}
_REQUIRED = {"url", "branch", "tree"}
_COMMON = {"name", "kind", "reply_on", "cc"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def load(config, settings, state: State) -> list[Source]:
    """The configured [[sources]]; ConfigError naming the first that is not right."""
    sources: list[Source] = []
    for table in config.list("sources"):
        name, kind = table.get("name"), table.get("kind")
        where = f"[[sources]] {name!r}" if isinstance(name, str) else "[[sources]]"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{where}: name must be letters, digits, '.', '_' or '-'")
        if any(s.name == name for s in sources):
            raise ConfigError(f"{where}: two sources have this name")
        if kind not in _KEYS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(_KEYS)}, not {kind!r}")
        unknown = sorted(set(table) - _KEYS[kind] - _COMMON)
        missing = sorted(_REQUIRED & _KEYS[kind] - set(table))
        if unknown or missing:
            raise ConfigError(f"{where}: {f'unknown key {unknown[0]}' if unknown else f'no {missing[0]}'}")
        reply_on = _words(table, "reply_on", config.get("mail", "reply_on"), where)
        wrong = sorted(set(reply_on) - set(EXIT_STATUS) - {ON_GUESSED_BASE})
        if wrong:
            raise ConfigError(f"{where}: reply_on: {wrong[0]!r} is no verdict "
                              f"({', '.join(EXIT_STATUS)}; or {ON_GUESSED_BASE})")
        common = {"name": name, "state": state, "reply_on": set(reply_on), "cc": _words(table, "cc", [], where)}
        sources.append(_make(kind, table, common, config, settings, where))
    return sources


def _words(table: dict, key: str, default: list[str], where: str) -> list[str]:
    value = table.get(key, default)
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return value


def _make(kind: str, table: dict, common: dict, config, settings, where: str) -> Source:
    from bot.sources.branch import Branch
    from bot.sources.inbox import Inbox
    from bot.sources.query import Query, default_query
    limit = config.get("limits", "max_message_bytes")
    if kind == "inbox":
        return Inbox(**common, url=table["url"], list_address=table.get("list", ""), max_message_bytes=limit,
                     mirrors=settings.state.sources / common["name"])
    if kind == "query":
        paths = [p for t in settings.declarations.trees.values()
                 for p in (*t.common_paths, *(q for e in t.entries.values() for q in e.paths))]
        query, days = table.get("query") or default_query(paths), table.get("first_days", 1)
        if not isinstance(query, str) or not query.strip() or not isinstance(days, (int, float)):
            raise ConfigError(f"{where}: query must be a search and first_days a number of days")
        return Query(**common, url=table["url"], query=query, first_days=days, max_message_bytes=limit)
    site = settings.sites.get(table["tree"])
    if site is None:
        raise ConfigError(f"{where}: tree {table['tree']!r} is not a configured tree ([trees.{table['tree']}] path)")
    return Branch(**common, url=table["url"], branch=table["branch"], tree_kind=table["tree"], tree_path=site.path)
