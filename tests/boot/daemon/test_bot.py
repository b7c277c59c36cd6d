"""The list bot end to end, against real servers on loopback: a public-inbox archive served by
public-inbox-httpd, an SMTP server collecting replies, and real checks on the Linux tree."""
from __future__ import annotations

import email.utils
import os
import re
import signal
import subprocess
from email.policy import default
from pathlib import Path

import pytest
import trees
from git_server import GitServer
from harness import EXAMPLE, LIST, ROOT, Lab, ids, posted, reply_to
from inbox import PublicInbox

MAINTAINER = "Mia Maintainer <mia@example.org>"
PVH_C = "arch/x86/platform/pvh/enlighten.c"


@pytest.fixture
def lab(tmp_path, workspaces):
    made = Lab(tmp_path, trees.linux(), ["regression", "apply-failed", "build-failed", "pass"], workspaces)
    yield made
    made.close()


def harmless_pvh_series(tmp_path: Path) -> Path:
    anchor = "#include <xen/interface/hvm/start_info.h>\n"
    return trees.make_series(trees.linux(), tmp_path / "harmless", [
        ("x86/pvh: comment the entry", {PVH_C: trees.add_after(anchor, "/* bootbot bot test 1 */\n")}),
        ("x86/pvh: comment it again", {PVH_C: trees.add_after(anchor, "/* bootbot bot test 2 */\n")}),
    ])


def test_a_regression_gets_one_reply_threaded_to_the_culprit(lab, tmp_path):
    messages = posted(EXAMPLE)
    for message in messages:
        lab.inbox.deliver(message)
    first = lab.poll()
    assert first.returncode == 0, first.stderr
    [reply] = lab.replies(1)
    culprit = email.message_from_bytes(messages[2], policy=default)   # cover, then patches 1, 2, 3
    assert reply.message["Subject"] == f"Re: {culprit['Subject']}"
    assert ids(reply.message["In-Reply-To"]) == ids(culprit["Message-ID"])
    assert ids(reply.message["References"]) == ids(culprit["References"]) + ids(culprit["Message-ID"])
    assert reply.message["To"] == culprit["From"]
    assert LIST in reply.message["Cc"]
    assert reply.message["Auto-Submitted"] == "auto-generated"
    body = reply.message.get_content().replace("\r\n", "\n")
    assert "REGRESSION" in body and "First bad patch: [2/3]" in body
    # where pvh died, though its console said nothing: the ud2 patch 2 puts in pvh_start_xen
    assert re.search(r"^pvh: triple fault: #UD at pvh_start_xen\+0x0 \(arch/x86/platform/pvh/head\.S:\d+\)\n"
                     r"  patch 2 made that line: ud2$", body, re.M), body
    assert set(reply.recipients) == {"ann@example.org", LIST}

    # The reply comes back through the list: it lands in the patch's thread, and is not answered.
    lab.inbox.deliver(reply.raw.replace(b"\r\n", b"\n"))
    again = lab.poll()
    assert again.returncode == 0, again.stderr
    assert len(lab.sink.received) == 1
    thread = lab.db().execute("SELECT thread FROM message WHERE msgid = ?",
                              (reply.message["Message-ID"].strip("<>"),)).fetchone()
    assert ["<%s>" % thread[0]] == ids(email.message_from_bytes(messages[0], policy=default)["Message-ID"])

    # A maintainer takes the series with b4 from that thread: the bot's tags are not taken as trailers.
    applied = b4_am(lab.inbox.url, culprit["Message-ID"], tmp_path / "b4")
    trailers = re.findall(r"^[\w-]+-by: .*$", applied, re.M)
    assert "Signed-off-by: Ann Developer <ann@example.org>" in trailers and not [t for t in trailers if "bootbot" in t]
    # In the list's conventions: the Subject on its line, plain 8bit or 7bit text, never quoted-printable.
    head = reply.raw.split(b"\r\n\r\n", 1)[0].decode()
    assert f"\r\nSubject: Re: {culprit['Subject']}\r\n" in head
    assert re.search(r"Content-Transfer-Encoding: (7bit|8bit)\r\n", head), head
    # Prose within 80 columns; longer lines only where a command, a console line or a table row is quoted.
    entries = ("bios", "efi", "pvh", "xen-pv", "xen-pvh")
    long = [line for line in body.splitlines() if len(line) > 80 and not line.startswith(("  ", "=> ", "| ", *entries))]
    assert not long, long


def b4_am(archive: str, msgid: str, out: Path) -> str:
    """What `b4 am` makes of the thread of `msgid` in the archive: the mbox a maintainer applies."""
    out.mkdir()
    env = {**os.environ, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "b4.midmask", "GIT_CONFIG_VALUE_0": f"{archive}/%s",
           "XDG_CACHE_HOME": str(out / "cache"), "XDG_CONFIG_HOME": str(out / "config")}
    run = subprocess.run([str(ROOT / ".venv" / "bin" / "b4"), "am", "--no-cover", "-o", str(out), msgid.strip("<>")],
                         cwd=out, env=env, capture_output=True, text=True, timeout=120)
    made = list(out.glob("*.mbx"))
    assert run.returncode == 0 and made, run.stdout + run.stderr
    return made[0].read_text()


def test_retest_is_obeyed_from_a_maintainer_only(lab, tmp_path):
    messages = posted(harmless_pvh_series(tmp_path))
    for message in messages:
        lab.inbox.deliver(message)
    assert lab.poll().returncode == 0
    lab.replies(1)   # the all-passed reply this lab's policy asks for
    cover = messages[0]
    lab.inbox.deliver(reply_to(cover, "Oscar Outsider <oscar@example.net>", "@bootbot retest\n", "outsider@example.net"))
    lab.inbox.deliver(reply_to(cover, MAINTAINER, "> @bootbot retest\nI agree.\n", "quoted@example.org"))
    # bios: a pvh series does not touch it, and a maintainer asking boots it all the same
    lab.inbox.deliver(reply_to(cover, MAINTAINER, "Please:\n@bootbot retest bios\n", "retest@example.org"))
    lab.inbox.deliver(reply_to(cover, MAINTAINER, "@bootbot retest floppy\n", "floppy@example.org"))
    assert lab.poll().returncode == 0
    replies = lab.replies(3)
    assert len(replies) == 3
    answers = {r.message["In-Reply-To"]: r.message.get_content() for r in replies[1:]}
    assert "bootbot: PASS" in answers["<retest@example.org>"] and "\nbios " in answers["<retest@example.org>"]
    assert "no entry named floppy: the linux tree's entries are bios, efi, pvh, xen-pv, xen-pvh" in \
        " ".join(answers["<floppy@example.org>"].split())   # as prose, wrapped at 80 columns
    assert lab.poll().returncode == 0
    assert len(lab.sink.received) == 3   # nothing else was answered, nothing twice


def test_a_job_killed_midway_runs_again_and_replies_once(lab, tmp_path):
    for message in posted(harmless_pvh_series(tmp_path)):
        lab.inbox.deliver(message)
    bot = lab.start("poll", "--once")
    for line in bot.stderr:   # the bot's own log says when the check has begun
        if "checking series" in line:
            break
    os.killpg(bot.pid, signal.SIGKILL)
    bot.wait()
    assert lab.db().execute("SELECT state FROM job").fetchall() == [("running",)]
    assert lab.sink.received == []
    assert lab.poll().returncode == 0
    assert len(lab.replies(1)) == 1
    assert lab.poll().returncode == 0
    assert len(lab.sink.received) == 1
    assert lab.db().execute("SELECT state, attempts FROM job").fetchall() == [("done", 2)]


def test_a_reply_waits_out_an_smtp_outage_and_arrives_once(lab, tmp_path):
    for message in posted(harmless_pvh_series(tmp_path)):
        lab.inbox.deliver(message)
    lab.sink.stop()
    assert lab.poll().returncode == 0
    assert lab.db().execute("SELECT state, attempts FROM outbox").fetchall() == [("pending", 1)]
    lab.sink.start()
    assert lab.poll().returncode == 0
    assert len(lab.replies(1)) == 1
    assert lab.poll().returncode == 0
    assert len(lab.sink.received) == 1
    assert lab.db().execute("SELECT state FROM outbox").fetchall() == [("sent",)]


def test_serve_checks_what_arrives_and_stops_on_sigterm(lab, tmp_path):
    log = tmp_path / "serve.log"
    bot = lab.start("serve", log=log.open("w"))
    try:
        for message in posted(harmless_pvh_series(tmp_path)):
            lab.inbox.deliver(message)
        [reply] = lab.replies(1, timeout=600, bot=bot, log=log)
        assert "PASS" in reply.message.get_content()
        bot.send_signal(signal.SIGTERM)
        assert bot.wait(timeout=60) == 0
    finally:
        if bot.poll() is None:
            os.killpg(bot.pid, signal.SIGKILL)


def test_a_branch_whose_second_new_commit_breaks_pvh_gets_one_mail_threaded_to_its_posting(lab, tmp_path):
    """tip's x86/boot gains three commits; the second, posted on a list the bot does not follow,
    breaks pvh. Its author and committer get one mail naming it, in the posting's thread."""
    linux = trees.linux()
    remote = tmp_path / "git" / "tip.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    objects = subprocess.run(["git", "-C", str(linux), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (remote / "objects" / "info" / "alternates").write_text(f"{objects}/objects\n")   # the tree's history, shared
    base = subprocess.run(["git", "-C", str(linux), "rev-parse", "master"], capture_output=True, text=True,
                          check=True).stdout.strip()
    subprocess.run(["git", "-C", str(remote), "update-ref", "refs/heads/x86/boot", base], check=True)
    elsewhere = PublicInbox(tmp_path / "x86-list", "x86", "x86@example.org")
    server = GitServer(tmp_path / "git")
    try:
        posting = (f"From: Ann Developer <ann@example.org>\nTo: x86@example.org\nSubject: [PATCH] x86/pvh: trap early "
                   f"in pvh_start_xen\nMessage-ID: <pvh-trap@example.org>\nDate: {email.utils.formatdate()}\n\nud2\n")
        elsewhere.deliver(posting.encode())
        link = f"{elsewhere.serve()}/pvh-trap@example.org"
        with lab.config.open("a") as config:
            config.write(f'[[sources]]\nname = "tip-x86-boot"\nkind = "branch"\nurl = "{server.url("tip.git")}"\n'
                         f'branch = "x86/boot"\ntree = "linux"\ncc = ["x86@example.org"]\n')
        assert lab.poll().returncode == 0   # the branch's first sight: from here on
        anchor = "#include <xen/interface/hvm/start_info.h>\n"
        trap = ("x86/pvh: trap early in pvh_start_xen\n\nSigned-off-by: Ann Developer <ann@example.org>\n"
                f"Link: {link}\n")
        commits = trees.make_commits(linux, tmp_path / "commits", [
            ("x86/pvh: comment the entry", {PVH_C: trees.add_after(anchor, "/* bootbot branch test 1 */\n")}),
            (trap, {"arch/x86/platform/pvh/head.S": trees.add_after(
                "SYM_CODE_START_LOCAL(pvh_start_xen)\n\tUNWIND_HINT_EMPTY\n", "\tud2\n")}),
            ("x86/pvh: comment it again", {PVH_C: trees.add_after(anchor, "/* bootbot branch test 2 */\n")}),
        ], base, git_dir=remote, committer="Tip Bot <tip-bot@example.org>")
        subprocess.run(["git", "-C", str(remote), "update-ref", "refs/heads/x86/boot", commits[-1]], check=True)
        done = lab.poll()
        assert done.returncode == 0, done.stderr
        [mail] = lab.replies(1)
        assert ids(mail.message["In-Reply-To"]) == ["<pvh-trap@example.org>"]
        assert mail.message["Subject"] == "Re: [PATCH] x86/pvh: trap early in pvh_start_xen"
        assert set(mail.recipients) == {"ann@example.org", "tip-bot@example.org", "x86@example.org"}
        body = mail.message.get_content().replace("\r\n", "\n")
        prose = " ".join(body.split())   # as read, whatever the wrapping
        assert f"stops booting at commit {commits[1][:12]} (x86/pvh: trap early in pvh_start_xen)" in prose, body
        assert f"First bad commit: {commits[1][:12]}" in body and "\n  Committer: Tip Bot <tip-bot@example.org>" in body
        assert re.search(r"^pvh: triple fault: #UD at pvh_start_xen\+0x0 \(arch/x86/platform/pvh/head\.S:\d+\)\n"
                         rf"  commit {commits[1][:12]} made that line: ud2$", body, re.M), body
        assert f"git log --first-parent {base}..{commits[-1]}" in body
        assert lab.poll().returncode == 0   # the same head again: nothing new, no second mail
        assert len(lab.sink.received) == 1
    finally:   # the shared Linux tree as it was: without the refs the bot fetched into it
        refs = subprocess.run(["git", "-C", str(linux), "for-each-ref", "--format=delete %(refname)",
                               "refs/bootbot/tip-x86-boot/"], capture_output=True, text=True, check=True).stdout
        subprocess.run(["git", "-C", str(linux), "update-ref", "--stdin"], input=refs, text=True, check=True)
        server.close()
        elsewhere.close()
