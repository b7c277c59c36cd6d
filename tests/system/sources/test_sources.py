"""Several sources at once, against real servers on loopback: public-inbox archives (searched with
Xapian for a query source), a git daemon serving a branch, the SMTP sink. The series here are
refused (more patches than the lab allows) so each gets a real verdict and reply without a
kernel build; test_bot.py has the branch whose commit breaks a real boot."""
from __future__ import annotations

import json
import select
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests
from git_server import GitServer
from harness import LIST as XEN_DEVEL
from harness import Lab, cli, ids, refused, start
from inbox import PublicInbox
from prometheus_client.parser import text_string_to_metric_families
from tiny_tree import git, patches

from bot.sources import branch

X86 = "x86@lists.example.org"
EFI = "linux-efi@lists.example.org"


class Sources(Lab):
    """test_bot's lab on the tiny tree (its archive is xen-devel), with two more archives (x86
    followed whole, linux-efi only through a search), a git server for a branch, and series of
    more than two patches refused."""

    def __init__(self, root: Path, repo: Path):
        super().__init__(root, repo, ["refused"], root / "workspaces")
        self.root, self.repo, self.pushed = root, repo, 0
        self.inboxes = {"xen-devel": self.inbox, "x86": PublicInbox(root / "x86", "x86", X86),
                        "linux-efi": PublicInbox(root / "linux-efi", "linux-efi", EFI)}
        self.inboxes["x86"].serve()
        self.inboxes["linux-efi"].serve()
        self.git = GitServer(root / "git")
        subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(root / "git" / "tip.git")], check=True)
        text = self.config.read_text()
        assert "[mail]\n" in text and "[limits]" not in text
        self.config.write_text(text.replace("[mail]\n", '[mail]\ncc = ["watchers@example.org"]\n') + f"""
[limits]
max_patches = 2
[web]
url = "https://pages.example.org/"
[[sources]]
name = "x86"
kind = "inbox"
url = "{self.inboxes['x86'].url}"
list = "{X86}"
[[sources]]
name = "boot-paths"
kind = "query"
url = "{self.inboxes['linux-efi'].url}"
[[sources]]
name = "tip-x86-boot"
kind = "branch"
url = "{self.git.url('tip.git')}"
branch = "master"
tree = "linux"
cc = ["x86-maintainers@example.org"]
""")

    def post(self, inbox: str, mails: list[Path]) -> None:
        for mail in mails:
            self.inboxes[inbox].deliver(mail.read_bytes().split(b"\n", 1)[1])   # without the mbox From_ line
        self.inboxes[inbox].restart()   # for its search to find them now

    def poll(self, *wrapped: str) -> subprocess.CompletedProcess:
        """One cycle of the bot; `wrapped`: "module:function:n", killing it (SIGKILL) at the
        function's n-th call, as the OOM killer would mid-poll ("module:function:n:raise":
        raising RuntimeError there instead, as a bug would)."""
        return cli("poll", "--once", config=self.config, wrapped=wrapped)

    def rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.state / "bootbot.sqlite3") as db:
            return [tuple(r) for r in db.execute(sql)]

    def push(self, *paths: str, reset: str | None = None) -> str:
        """Commits touching `paths` pushed to the served branch (on `reset`, forced)."""
        if reset:
            git(self.repo, "reset", "-q", "--hard", reset)
        for path in paths:
            self.pushed += 1   # each commit its own, even within one second on the same parent
            with (self.repo / path).open("a") as f:
                f.write(f"more {self.pushed}\n")
            git(self.repo, "commit", "-q", "-am", f"docs: touch {path} ({self.pushed})")
        git(self.repo, "push", "-q", "--force", str(self.root / "git" / "tip.git"), "HEAD:master")
        return git(self.repo, "rev-parse", "HEAD").strip()

    def close(self) -> None:
        super().close()
        self.git.close()
        self.inboxes["x86"].close()
        self.inboxes["linux-efi"].close()


@pytest.fixture
def lab(tmp_path, repo):
    made = Sources(tmp_path, repo)
    yield made
    made.close()


def test_a_series_on_the_second_list_is_answered_there(lab):
    mails = refused(lab, "on-x86")
    lab.post("x86", mails)
    done = lab.poll()
    assert done.returncode == 0, done.stderr
    [reply] = lab.sink.wait_for(1)
    assert reply.message["Cc"].addresses[0].addr_spec == X86
    assert XEN_DEVEL not in str(reply.message["Cc"]) and "watchers@example.org" in str(reply.message["Cc"])
    assert "REFUSED" in reply.message.get_content()
    assert lab.rows("SELECT source FROM message GROUP BY source") == [("x86",)]
    # the reply links the check's page, which knows where the series came from
    [(folder,)] = lab.rows("SELECT result FROM job")
    assert f"\n  https://pages.example.org/checks/{folder}\n" in reply.message.get_content().replace("\r\n", "\n")
    origin = json.loads((lab.state / "results" / folder / "outcome.json").read_text())["origin"]
    assert origin == {"source": "x86", "archive": lab.inboxes["x86"].url,
                      "link": f"{lab.inboxes['x86'].url}/{git_msgid(mails[0])}/"}


def test_a_query_finds_a_series_on_a_list_no_inbox_follows_and_answers_all_it_went_to(lab):
    mails = refused(lab, "on-efi")
    lab.post("linux-efi", mails)
    lab.post("linux-efi", patches(lab.repo, lab.root / "docs", 1, count=1, cover=False, path="Documentation/old.rst"))
    done = lab.poll()
    assert done.returncode == 0, done.stderr
    [reply] = lab.sink.wait_for(1)
    assert EFI in str(reply.message["Cc"]) and "ann@example.org" in str(reply.message["To"])
    [cover] = [m for m in mails if "0000-" in m.name]
    assert ids(reply.message["In-Reply-To"]) == [f"<{git_msgid(cover)}>"]
    # the search found the boot-path series (its whole thread, cover included), not the docs patch
    assert lab.rows("SELECT COUNT(*), source FROM message") == [(4, "boot-paths")]
    again = lab.poll()   # an idle poll: nothing new, nothing doubled
    assert again.returncode == 0 and len(lab.sink.received) == 1
    assert lab.rows("SELECT COUNT(*) FROM job") == [(1,)]


def test_a_series_the_query_found_is_completed_by_a_patch_its_search_does_not_match(lab):
    """Patch 2/2 touches a boot path, patch 1/2 only documentation: the search finds 2/2 alone,
    and 1/2, arriving later, comes in with its thread while the series waits."""
    base = git(lab.repo, "rev-parse", "HEAD").strip()
    for n, path in ((1, "Documentation/old.rst"), (2, "arch/x86/boot/main.c")):
        with (lab.repo / path).open("a") as f:
            f.write(f"step {n}\n")
        git(lab.repo, "commit", "-q", "-am", f"x86/boot: step {n}")
    mails = git(lab.repo, "format-patch", "--thread", "--cover-letter", "-o", str(lab.root / "mixed"),
                f"{base}..HEAD").split()
    git(lab.repo, "reset", "-q", "--hard", base)
    cover, docs, boot = map(Path, mails)
    lab.post("linux-efi", [cover, boot])
    assert lab.poll().returncode == 0
    assert lab.rows("SELECT expected, state FROM series") == [(2, "waiting")]
    lab.post("linux-efi", [docs])
    done = lab.poll()
    assert done.returncode == 0, done.stderr
    assert lab.rows("SELECT expected, state FROM series") == [(2, "queued")]   # complete: its check follows
    assert lab.rows("SELECT COUNT(*), source FROM message") == [(3, "boot-paths")]


def test_the_same_series_on_two_lists_and_found_by_the_query_is_checked_once_and_answered_once(lab):
    mails = refused(lab, "everywhere")
    for mail in mails:   # sent to all three lists at once, as a cross-posted series is
        mail.write_text(mail.read_text().replace("\nSubject: ", f"\nTo: {XEN_DEVEL}\nCc: {X86}, {EFI}\nSubject: ", 1))
    for inbox in ("xen-devel", "x86", "linux-efi"):
        lab.post(inbox, mails)
    done = lab.poll()
    assert done.returncode == 0, done.stderr
    assert lab.sink.wait_for(1)
    assert lab.poll().returncode == 0
    assert len(lab.sink.received) == 1
    assert lab.rows("SELECT COUNT(*) FROM series") == [(1,)] and lab.rows("SELECT COUNT(*) FROM job") == [(1,)]
    assert lab.rows("SELECT COUNT(*) FROM message") == [(4,)]
    # the first source polled brought it; each followed list it went to hears (linux-efi only searched)
    assert lab.rows("SELECT DISTINCT source FROM message") == [("xen-devel",)]
    cc = [a.addr_spec for a in lab.sink.received[0].message["Cc"].addresses]
    assert cc == [XEN_DEVEL, X86, "watchers@example.org"]


def test_a_branch_is_checked_from_the_head_first_seen_and_a_force_push_from_the_merge_base(lab):
    first = git(lab.repo, "rev-parse", "HEAD").strip()
    assert lab.poll().returncode == 0
    assert lab.rows("SELECT COUNT(*) FROM push") == [(0,)]   # the first sight only marks where to start
    head = lab.push("Documentation/old.rst", "Documentation/old.rst")
    assert lab.poll().returncode == 0
    forced = lab.push("Documentation/old.rst", reset=first)
    assert lab.poll().returncode == 0
    assert lab.rows("SELECT base, head, state FROM push ORDER BY id") == [
        (first, head, "skipped"), (first, forced, "skipped")]   # docs only: nothing to boot
    assert lab.rows("SELECT value FROM source_cursor WHERE source = 'tip-x86-boot'") == [(forced,)]
    assert lab.poll().returncode == 0
    assert lab.rows("SELECT COUNT(*) FROM push") == [(2,)]


def test_each_source_kind_killed_mid_poll_keeps_its_cursor_and_doubles_nothing(lab):
    first = git(lab.repo, "rev-parse", "HEAD").strip()
    assert lab.poll().returncode == 0   # the branch's first sight
    lab.post("xen-devel", refused(lab, "a"))
    lab.post("linux-efi", refused(lab, "b"))
    lab.post("linux-efi", refused(lab, "c"))
    head = lab.push("Documentation/old.rst")
    for source, spec in (("xen-devel", "bot.sources.inbox:Inbox.store:3"),       # inside the inbox's batch
                         ("boot-paths", "bot.sources.query:Query.store:6"),      # inside its second thread
                         ("tip-x86-boot", "bot.sources.branch:Branch._answer:1")):   # fetched, not recorded
        before = lab.rows(f"SELECT key, value FROM source_cursor WHERE source = '{source}'")
        killed = lab.poll(spec)   # each poll completes the sources before the one it kills
        assert killed.returncode == -9, (spec, killed.stderr)
        assert lab.rows(f"SELECT key, value FROM source_cursor WHERE source = '{source}'") == before
    done = lab.poll()
    assert done.returncode == 0, done.stderr
    assert len(lab.sink.wait_for(3)) == 3
    assert lab.poll().returncode == 0
    assert len(lab.sink.received) == 3   # one reply per series, none twice
    assert lab.rows("SELECT COUNT(*), COUNT(DISTINCT msgid) FROM message") == [(12, 12)]
    assert lab.rows("SELECT COUNT(*) FROM series") == [(3,)] and lab.rows("SELECT COUNT(*) FROM job") == [(3,)]
    assert lab.rows("SELECT base, head FROM push") == [(first, head)]
    assert lab.rows("SELECT value FROM source_cursor WHERE source = 'tip-x86-boot'") == [(head,)]


def test_a_source_that_fails_is_recorded_and_the_others_are_polled_all_the_same(lab):
    lab.post("xen-devel", refused(lab, "a"))
    lab.post("x86", refused(lab, "b"))
    done = lab.poll("bot.sources.inbox:Inbox.store:1:raise")   # xen-devel, polled first, fails
    assert done.returncode == 0, done.stderr
    [reply] = lab.sink.wait_for(1)
    assert X86 in str(reply.message["Cc"])
    assert lab.rows("SELECT source, error FROM source_poll WHERE error IS NOT NULL") == [
        ("xen-devel", "RuntimeError: injected")]
    assert lab.rows("SELECT COUNT(*) FROM source_cursor WHERE source = 'xen-devel'") == [(0,)]
    assert lab.poll().returncode == 0
    assert len(lab.sink.wait_for(2)) == 2   # read on the next poll, from where it was
    assert lab.rows("SELECT source, error FROM source_poll WHERE error IS NOT NULL") == []


@pytest.mark.parametrize("message, link, msgid", [
    ("Link: https://lore.kernel.org/r/20261130.1234-1-ann@example.org\n", "https://lore.kernel.org/r/"
     "20261130.1234-1-ann@example.org", "20261130.1234-1-ann@example.org"),
    # tip: a bug first, the posting last; a thread link with its anchor; an encoded id
    ("Closes: x\nLink: https://bugzilla.kernel.org/show_bug.cgi?id=1\nLink: https://lore.kernel.org/all/"
     "a%2Bb@x.org/T/#u\n", "https://lore.kernel.org/all/a%2Bb@x.org/T/#u", "a+b@x.org"),
    ("Link: https://github.com/x/y/issues/1\n", "", ""),
])
def test_a_commit_s_posting_is_its_last_link_naming_a_message_id(message, link, msgid):
    assert branch._posting(f"x86/boot: subject\n\nBody.\n\n{message}") == (link, msgid)


def test_bootbot_sources_says_each_cursor_poll_and_error(lab):
    lab.post("x86", refused(lab, "on-x86"))
    assert lab.poll().returncode == 0
    lab.inboxes["xen-devel"].close()   # the xen-devel archive goes away
    assert lab.poll().returncode == 0
    shown = cli("sources", config=lab.config, timeout=60)
    assert shown.returncode == 0, shown.stderr
    said = shown.stdout
    x86 = said[said.index("x86: inbox"):said.index("boot-paths:")]
    assert "cursor epoch 0: " in x86 and "ok" in x86 and "(4 messages)" in x86
    xen = said[said.index("xen-devel: inbox"):said.index("x86: inbox")]
    assert "failed: " in xen and "manifest.js.gz" in xen and "last good poll: 20" in xen
    branch = said[said.index("tip-x86-boot: branch"):]
    assert f"cursor head: {git(lab.repo, 'rev-parse', 'HEAD').strip()}" in branch


@pytest.mark.parametrize("wrong, said", [
    ('kind = "query"', "[[sources]] 'boot-paths': kind must be one of inbox, query, branch, not 'lei'"),
    ('name = "x86"', "[[sources]] 'x86': reply_on: 'regresion' is no verdict"),
    ('kind = "branch"', "[[sources]] 'tip-x86-boot': tree 'xen' is not a configured tree ([trees.xen] path)"),
])
def test_a_source_badly_configured_is_one_line(lab, wrong, said):
    fault = {'kind = "query"': 'kind = "lei"', 'name = "x86"': 'name = "x86"\nreply_on = ["regresion"]',
             'kind = "branch"': 'kind = "branch"\ntree = "xen"'}[wrong]
    text = lab.config.read_text()
    if "tree = " in fault:
        text = text.replace('tree = "linux"\n', "")
    lab.config.write_text(text.replace(wrong, fault))
    done = lab.poll()
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"bootbot: {said}"), done.stderr


def git_msgid(mail: Path) -> str:
    from email import message_from_bytes
    return message_from_bytes(mail.read_bytes()).get("Message-ID").strip("<>")


def test_metrics_status_and_alarms_each_once_until_cleared(lab):
    text = lab.config.read_text().replace("[mail]\n", '[mail]\noperator = "ops@example.org"\nmute = true\n')
    lab.config.write_text(text + "[health]\nstale_seconds = 0\nlab_errors = 1\noutbox_seconds = 0\n")
    lab.post("x86", refused(lab, "on-x86"))
    assert lab.poll().returncode == 0
    # muted: the reply waits (outbox alarm); no poll counts as recent with stale_seconds = 0 (stale alarm)
    alarms = lab.sink.wait_for(2)
    assert lab.rows("SELECT key FROM notice WHERE key LIKE 'alarm:%' ORDER BY key") == [("alarm:outbox",),
                                                                                           ("alarm:stale",)]
    assert {str(a.message["Subject"]).split(" ")[2] for a in alarms} == {"a", "no"}   # "a reply has waited", "no source"
    assert all(a.recipients == ["ops@example.org"] for a in alarms)
    assert lab.poll().returncode == 0
    assert len(lab.sink.received) == 2   # still raised: not told again
    lab.config.write_text(lab.config.read_text().replace("mute = true\n", "").replace("stale_seconds = 0",
                                                                                         "stale_seconds = 3600"))
    assert lab.poll().returncode == 0   # the reply goes out, the poll is recent: both clear
    assert [m.recipients for m in lab.sink.wait_for(3)][2:] == [["ann@example.org", X86, "watchers@example.org"]]
    assert lab.rows("SELECT key FROM notice WHERE key LIKE 'alarm:%'") == []
    lab.config.write_text(lab.config.read_text().replace("stale_seconds = 3600", "stale_seconds = 0"))
    assert lab.poll().returncode == 0
    assert "no source has polled well" in lab.sink.wait_for(4)[3].message["Subject"]   # back: told again

    served = start("web", "--listen", "127.0.0.1:0", config=lab.config)
    try:
        ready, _, _ = select.select([served.stderr], [], [], 30)
        url = served.stderr.readline().split()[-1] if ready else ""
        scraped = requests.get(f"{url}metrics", timeout=30)
    finally:
        served.terminate()
        served.wait(timeout=30)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(scraped.text) for s in family.samples}
    assert samples[("bootbot_checks_total", (("verdict", "refused"),))] == 1
    assert samples[("bootbot_messages_total", ())] == 4
    assert samples[("bootbot_source_failing", (("source", "x86"),))] == 0
    assert samples[("bootbot_last_good_poll_seconds", (("source", "x86"),))] > 0
    assert samples[("bootbot_outbox", ())] == 0
    assert samples[("bootbot_polls_total", (("source", "x86"),))] == 4   # one a cycle
    assert samples[("bootbot_poll_failures_total", (("source", "x86"),))] == 0
    status = cli("status", config=lab.config, timeout=60)
    assert "checks: 1 refused; lab errors in a row: 0" in status.stdout and "source x86: polled" in status.stdout


def test_serve_serves_the_pages_beside_the_bot(lab):
    lab.config.write_text(lab.config.read_text().replace("[web]\n", '[web]\nlisten = "127.0.0.1:0"\n'))
    lab.post("x86", refused(lab, "on-x86"))
    bot = lab.start("serve")
    try:
        deadline, said = time.monotonic() + 60, ""
        while "results pages at" not in said and time.monotonic() < deadline:
            ready, _, _ = select.select([bot.stderr], [], [], max(0.0, deadline - time.monotonic()))
            said = bot.stderr.readline() if ready else said
        url = said.split("results pages at ")[-1].strip()
        assert url.startswith("http://127.0.0.1:"), said
        lab.sink.wait_for(1, timeout=120, hopeless=lambda: bot.poll() is not None and "the bot exited")
        index = requests.get(url, timeout=30)
        assert index.status_code == 200 and "x86/boot: series on-x86" in index.text
    finally:
        bot.terminate()
        bot.wait(timeout=60)
