"""A source of kind "query": patch mail anywhere on a public-inbox instance (lore's /all/) that its
search finds, such as the x86 series that never reach xen-devel. Followed incrementally through
public-inbox's own search: an idle poll is one Atom request for what was received since the last
poll; each message not yet stored brings its whole thread (t.mbox.gz), filed as any inbox's."""
from __future__ import annotations

import gzip
import logging
import mailbox
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, unquote

import requests

from bot.sources import Source, Unreachable
from bot.state import now

log = logging.getLogger("bootbot.query")
ATOM = "{http://www.w3.org/2005/Atom}"
OVERLAP = 3600   # seconds each poll looks back before the last one: mail reaches the index late
PAGE = 200       # results in a page of public-inbox's search, at most (SearchQuery.pm's $LIM)


@dataclass
class Query(Source):
    kind: ClassVar[str] = "query"
    reply_all: ClassVar[bool] = True   # mail found anywhere is answered where it went
    query: str = ""
    first_days: float = 1
    page: int = PAGE
    max_message_bytes: int | None = None
    timeout: float = 30
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self):
        self.url = self.url.rstrip("/")

    def poll(self) -> str:
        started = now()
        cursor = self.cursor("since")
        since = float(cursor.value) - OVERLAP if cursor else started - self.first_days * 86400
        # a series it found still waits for patches: they may not match the search (a docs patch)
        new = sum(map(self._take_thread, self.state.series.waiting_threads(self.name)))
        for msgid in self._search(f"({self.query}) AND rt:@{int(since)}.."):
            if not self.state.messages.has(msgid):   # else its thread came with it
                new += self._take_thread(msgid)
        self.move("since", str(started))
        return f"{new} messages" if new else ""

    def _search(self, query: str) -> list[str]:
        """The Message-IDs the search finds, oldest first, page by page."""
        found: list[str] = []
        while True:
            page = self._page(query, len(found))
            found += page
            if len(page) < self.page:
                return list(reversed(found))

    def _page(self, query: str, offset: int) -> list[str]:
        try:
            params: dict[str, str | int] = {"q": query, "x": "A", "o": offset, "l": self.page}
            answer = self.http.get(f"{self.url}/", params=params, timeout=self.timeout)
            if answer.status_code == 404:   # public-inbox's answer when nothing matches
                return []
            answer.raise_for_status()
            feed = ElementTree.fromstring(answer.content)
        except (requests.RequestException, ElementTree.ParseError) as e:
            raise Unreachable(f"{self.url} search: {e}") from None
        links = [entry.find(f"{ATOM}link") for entry in feed.iter(f"{ATOM}entry")]
        return [unquote(link.get("href", "").rstrip("/").rsplit("/", 1)[-1]) for link in links if link is not None]

    def _take_thread(self, msgid: str) -> int:
        """Stores the thread of `msgid`; how many of its messages were new. A thread the archive
        no longer has (deleted) is passed over; any other failure leaves the cursor for the next poll."""
        try:
            answer = self.http.get(f"{self.url}/{quote(msgid, safe='@+=')}/t.mbox.gz", timeout=self.timeout)
            if answer.status_code == 404:
                log.warning("%s: the archive has no thread of <%s>; passed over", self.name, msgid)
                return 0
            answer.raise_for_status()
            data = gzip.decompress(answer.content)
        except (requests.RequestException, OSError) as e:
            raise Unreachable(f"{self.url}: the thread of <{msgid}>: {e}") from None
        with tempfile.NamedTemporaryFile(suffix=".mbox") as file:
            Path(file.name).write_bytes(data)
            box = mailbox.mbox(file.name)
            raws = [box.get_bytes(key) for key in box.keys()]
        too_big = [raw for raw in raws if self.max_message_bytes is not None and len(raw) > self.max_message_bytes]
        if too_big:   # anyone can post: a huge mail is not stored or parsed
            log.warning("%s: %d messages of <%s>'s thread skipped: over limits.max_message_bytes",
                        self.name, len(too_big), msgid)
        with self.state.transaction():
            new = sum(self.store(raw) for raw in raws if raw not in too_big)
        log.info("%s: the thread of <%s>, %d messages, %d new", self.name, msgid, len(raws), new)
        return new


def default_query(paths: list[str]) -> str:
    """A search for patches touching any of `paths` (entries' path patterns: a trailing / is a
    folder, * a glob): dfn: matches a file name or a prefix of it."""
    prefixes = sorted({path.split("*", 1)[0] for path in paths})
    return " OR ".join(f"dfn:{prefix}" for prefix in prefixes if prefix)
