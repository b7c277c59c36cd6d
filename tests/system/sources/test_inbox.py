"""Following a real public-inbox archive and assembling series from it (no kernel builds)."""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from conftest import DECLARED
from inbox import PublicInbox
from tiny_tree import patches

from bot.changes import assembly
from bot.changes.series import configure_b4
from bot.sources import Unreachable
from bot.sources.inbox import Inbox
from bot.sources.query import Query
from bot.state import State

MAX_MESSAGE = 1 << 20
POLICY = assembly.Policy(own_addresses=["bootbot@example.org"], maintainers=[], require_dkim=True,
                         grace_seconds=3600, commands_per_thread=5, read_seconds=20)


class Watched:
    """A served inbox, and the bot's store and poller following it."""

    def __init__(self, root: Path):
        self.inbox = PublicInbox(root / "inbox")
        self.url = self.inbox.serve()
        configure_b4(self.url)
        self.state = State(root / "state" / "bootbot.sqlite3")
        self.archive = Inbox("xen-devel", self.state, set(), url=self.url, mirrors=root / "state" / "archive",
                             max_message_bytes=MAX_MESSAGE)
        self.requests = 0
        self.archive.http.hooks["response"].append(self._count)

    def _count(self, response, *args, **kwargs):
        self.requests += 1

    def post(self, mails: list[Path]) -> None:
        for mail in mails:
            self.inbox.deliver(mail.read_bytes().split(b"\n", 1)[1])   # without the mbox From_ line

    def assemble(self, policy: assembly.Policy = POLICY,
                 touches_boot_path=lambda s: bool(DECLARED.select(s.files).entries)) -> None:
        self.archive.poll()
        assembly.take_new_messages(self.state, policy)
        assembly.queue_complete_series(self.state, policy, touches_boot_path)

    def series(self) -> list[tuple]:
        return [tuple(r) for r in self.state.database.rows("SELECT version, expected, state FROM series ORDER BY id")]

    def jobs(self) -> list[tuple]:
        return [tuple(r) for r in self.state.database.rows("SELECT series_id, state FROM job ORDER BY id")]


@pytest.fixture
def watched(tmp_path):
    made = Watched(tmp_path)
    yield made
    made.inbox.close()


def test_an_idle_poll_is_one_small_request(watched, repo, tmp_path):
    watched.post(patches(repo, tmp_path / "p", 1))
    assert watched.archive.poll() == "3 messages"
    mirror_fetched = (tmp_path / "state/archive/0.git/FETCH_HEAD").stat().st_mtime_ns
    watched.requests = 0
    assert watched.archive.poll() == ""
    assert watched.requests == 1   # the manifest; its fingerprint says nothing moved
    assert (tmp_path / "state/archive/0.git/FETCH_HEAD").stat().st_mtime_ns == mirror_fetched
    watched.post(patches(repo, tmp_path / "q", 2, count=1, cover=False))
    assert watched.archive.poll() == "1 messages"
    assert watched.state.database.one("SELECT COUNT(*) FROM message")[0] == 4


def test_a_new_epoch_is_noticed_and_read(watched, repo, tmp_path):
    watched.post(patches(repo, tmp_path / "p", 1, count=1, cover=False))
    assert watched.archive.poll() == "1 messages"
    watched.inbox.start_epoch(1, b"From: Ann <ann@example.org>\nTo: xen-devel@lists.example.org\n"
                                 b"Subject: in the next epoch\nMessage-ID: <next-epoch@example.org>\n"
                                 b"Date: Thu, 26 Nov 2026 11:00:00 +0000\n\nhello\n")
    assert watched.archive.poll() == "1 messages"
    assert watched.state.database.one("SELECT COUNT(*) FROM message WHERE msgid = 'next-epoch@example.org'")[0] == 1
    assert [r[0] for r in watched.state.database.rows("SELECT key FROM source_cursor ORDER BY key")] == ["epoch 0", "epoch 1"]
    assert watched.archive.poll() == ""


def test_an_unreachable_archive_keeps_the_cursor_and_loses_nothing(watched, repo, tmp_path):
    watched.post(patches(repo, tmp_path / "p", 1, count=1, cover=False))
    watched.archive.poll()
    cursor = watched.state.database.one("SELECT value FROM source_cursor")[0]
    watched.post(patches(repo, tmp_path / "q", 2, count=1, cover=False))
    away = Inbox("xen-devel", watched.state, set(), url="http://127.0.0.1:9/xen-devel",
                 mirrors=tmp_path / "state" / "archive", timeout=5)
    with pytest.raises(Unreachable):
        away.poll()
    assert watched.state.database.one("SELECT value FROM source_cursor")[0] == cursor
    assert watched.archive.poll() == "1 messages"
    assert watched.state.database.one("SELECT COUNT(*) FROM message")[0] == 2


def test_a_huge_mail_is_skipped_unread_and_the_cursor_moves_past_it(watched, repo, tmp_path):
    """public-inbox-mda itself drops mail over 500 KB, but an archive can hold larger (lore
    takes mail by other means): the bot reads none over limits.max_message_bytes."""
    watched.post(patches(repo, tmp_path / "p", 1, count=1, cover=False))
    watched.inbox.start_epoch(1, b"From: Mallory <m@example.org>\nTo: xen-devel@lists.example.org\n"
                                 b"Subject: [PATCH] x86/boot: big\nMessage-ID: <huge@example.org>\n"
                                 b"Date: Thu, 26 Nov 2026 11:00:00 +0000\n\n" + b"a" * 79 + b"\n" * MAX_MESSAGE)
    watched.assemble()
    assert watched.state.database.one("SELECT COUNT(*) FROM message WHERE msgid = 'huge@example.org'")[0] == 0
    assert watched.series() == [(1, 1, "queued")]
    assert [r[0] for r in watched.state.database.rows("SELECT key FROM source_cursor ORDER BY key")] == ["epoch 0", "epoch 1"]
    assert watched.archive.poll() == ""


@pytest.mark.parametrize("msgid, stored", [(b"<@>", "@"), (b"<a,b@example.org>", "a,b@example.org")])
def test_a_message_id_python_cannot_parse_is_stored_as_sent(watched, repo, tmp_path, msgid, stored):
    """Python 3.11's header parser raises on "<@>" and cuts "<a,b@c>": read as sent, neither can
    stop the cursor (a raise would roll back its batch at every poll) or file a mail wrongly."""
    watched.post(patches(repo, tmp_path / "p", 1, count=1, cover=False))
    watched.inbox.start_epoch(1, b"From: Mallory <m@example.org>\nTo: xen-devel@lists.example.org\n"
                                 b"Subject: odd\nMessage-ID: " + msgid + b"\n"
                                 b"Date: Thu, 26 Nov 2026 11:00:00 +0000\n\nhello\n")
    assert watched.archive.poll() == "2 messages"
    assert watched.state.database.one("SELECT COUNT(*) FROM message WHERE msgid = ?", stored)[0] == 1


def test_a_broken_reply_does_not_stop_its_series(watched, repo, tmp_path):
    [patch] = patches(repo, tmp_path / "p", 1, count=1, cover=False)
    msgid = re.search(rb"Message-ID: (<[^>]+>)", patch.read_bytes(), re.I).group(1)
    reply = tmp_path / "reply.mbox"
    reply.write_bytes(b"From x\nFrom: Mallory <m@example.org>\nSubject: Re: [PATCH] x86/boot: step 1\n"
                      b"Message-ID: <broken-reply@example.org>\nIn-Reply-To: " + msgid + b"\nReferences: " + msgid +
                      b"\nDate: Thu, 26 Nov 2026 11:00:00 +0000\nContent-Type: text/plain; a*\n\nnice\n")
    watched.post([patch, reply])
    watched.assemble()
    assert watched.state.database.one("SELECT COUNT(*) FROM message")[0] == 2
    assert watched.series() == [(1, 1, "queued")]


def test_mail_that_makes_the_parsers_crawl_is_given_up_at_the_deadline(watched, repo, tmp_path):
    """b4's expressions are quadratic on a long run of blank lines (the diffstat) and of "["
    (the subject): hours for these mails. Each is dropped after read_seconds; the rest goes on."""
    [blank] = patches(repo, tmp_path / "b", 7, count=1, cover=False)
    headers, body = blank.read_bytes().split(b"\n\n", 1)
    blank.write_bytes(headers + b"\n\n" + b"\n" * 400_000 + body)
    [brackets] = patches(repo, tmp_path / "s", 8, count=1, cover=False)
    brackets.write_bytes(brackets.read_bytes().replace(b"Subject: [PATCH v8]", b"Subject: " + b"[" * 100_000, 1))
    watched.post([blank, brackets, *patches(repo, tmp_path / "p", 1, count=1, cover=False)])
    watched.assemble(assembly.Policy(**{**POLICY.__dict__, "read_seconds": 2}))
    assert watched.series() == [(7, 1, "partial"), (1, 1, "queued")]
    assert [tuple(r) for r in watched.state.database.rows("SELECT COUNT(*), SUM(handled) FROM message")] == [(3, 3)]


def test_series_with_and_without_cover_and_single_patches_queue_when_complete(watched, repo, tmp_path):
    watched.post(patches(repo, tmp_path / "a", 1, count=3))               # cover + 3
    watched.post(patches(repo, tmp_path / "b", 1, count=2, cover=False, extra="_b"))   # 2, threaded to patch 1
    watched.post(patches(repo, tmp_path / "c", 1, count=1, cover=False, extra="_c"))   # a single patch
    watched.assemble()
    assert watched.series() == [(1, 3, "queued"), (1, 2, "queued"), (1, 1, "queued")]
    assert len(watched.jobs()) == 3
    watched.assemble()
    assert len(watched.jobs()) == 3   # nothing queued twice


def test_an_incomplete_series_waits_then_is_left_partial(watched, repo, tmp_path):
    mails = patches(repo, tmp_path / "a", 1, count=3)
    watched.post(mails[:3])   # cover, 1/3, 2/3: 3/3 never comes
    watched.assemble()
    assert watched.series() == [(1, 3, "waiting")]
    watched.assemble(assembly.Policy(**{**POLICY.__dict__, "grace_seconds": 0}))
    assert watched.series() == [(1, 3, "partial")] and watched.jobs() == []


def test_a_newer_revision_supersedes_a_queued_one(watched, repo, tmp_path):
    watched.post(patches(repo, tmp_path / "v1", 1))
    watched.assemble()
    watched.post(patches(repo, tmp_path / "v2", 2, extra="_v2"))
    watched.assemble()
    assert watched.series() == [(1, 2, "superseded"), (2, 2, "queued")]
    assert watched.jobs() == [(1, "cancelled"), (2, "queued")]


def test_a_series_off_the_boot_paths_is_recorded_and_left_alone(watched, repo, tmp_path):
    watched.post(patches(repo, tmp_path / "d", 1, count=1, cover=False, path="Documentation/old.rst"))
    watched.assemble()
    assert watched.series() == [(1, 1, "skipped")] and watched.jobs() == []


def test_one_series_that_breaks_the_assessment_is_set_aside_and_the_others_go_on(watched, repo, tmp_path, caplog):
    watched.post(patches(repo, tmp_path / "odd", 1, count=1, cover=False, extra="_odd"))
    watched.post(patches(repo, tmp_path / "fine", 2, count=1, cover=False))

    def touches_boot_path(series):
        if "_odd" in series.am_mbox.decode():
            raise RuntimeError("an odd series")
        return True
    watched.assemble(touches_boot_path=touches_boot_path)
    assert watched.series() == [(1, 1, "failed"), (2, 1, "queued")] and watched.jobs() == [(2, "queued")]
    assert [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()] == \
        [f"series {watched.state.database.one('SELECT head FROM series WHERE id = 1')['head']} could not be assessed; set aside"]


def test_an_older_state_s_cursor_and_mirror_become_the_first_inbox_s(tmp_path):
    """Before [[sources]], one archive's cursor was a table of its own and its mirror state/archive/:
    an upgrade reads on from where it was, not from the start of lore."""
    state = tmp_path / "state"
    (state / "archive" / "0.git").mkdir(parents=True)
    with sqlite3.connect(state / "bootbot.sqlite3") as old:
        old.execute("CREATE TABLE cursor (epoch INTEGER PRIMARY KEY, commit_id TEXT NOT NULL, fingerprint TEXT)")
        old.execute("INSERT INTO cursor VALUES (0, 'c0ffee', 'print')")
        old.execute("CREATE TABLE message (msgid TEXT PRIMARY KEY, raw BLOB NOT NULL, thread TEXT NOT NULL, parent TEXT, "
                    "received REAL NOT NULL, handled INTEGER NOT NULL DEFAULT 0)")
        old.execute("INSERT INTO message (msgid, raw, thread, received) VALUES ('a@b', '', 'a@b', 0)")
    held = State(state / "bootbot.sqlite3")
    inbox = Inbox("xen-devel", held, set(), url="http://127.0.0.1:9/xen-devel", mirrors=state / "sources" / "xen-devel")
    inbox.adopt(state / "archive")
    assert inbox.cursors() == {"epoch 0": "c0ffee"} and inbox.cursor("epoch 0").fingerprint == "print"
    assert (state / "sources" / "xen-devel" / "0.git").is_dir() and not (state / "archive").exists()
    assert held.database.one("SELECT name FROM sqlite_master WHERE name = 'cursor'") is None
    assert held.database.one("SELECT source FROM message")["source"] == "xen-devel"   # its series' replies Cc its list


def test_a_query_reads_every_page_of_the_search_and_each_thread_once(watched, repo, tmp_path):
    """public-inbox answers a search 200 results a page: a busy hour on lore's /all/ can fill one.
    A page of two here, and three threads: every message found, each thread fetched once."""
    for version in (1, 2, 3):
        watched.post(patches(repo, tmp_path / f"v{version}", version, count=1, cover=False, extra=f"_{version}"))
    watched.inbox.restart()   # its search sees the new mail now, not on its own timer
    query = Query("search", watched.state, set(), url=watched.url, query="dfn:arch/x86/boot/", page=2)
    fetched = []
    query.http.hooks["response"].append(lambda response, *a, **k: fetched.append(response.url))
    assert query.poll() == "3 messages"
    assert len([url for url in fetched if "t.mbox.gz" in url]) == 3
    assert watched.state.database.one("SELECT COUNT(*) FROM message WHERE source = 'search'")[0] == 3
    fetched.clear()
    assert query.poll() == ""   # idle: the overlap finds the three again, all known: no thread fetched
    assert not [url for url in fetched if "t.mbox.gz" in url]
