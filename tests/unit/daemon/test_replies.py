"""bot/daemon/replies.py on a database of its own: which outcomes are mailed, and where a series'
reply goes."""
from __future__ import annotations

import email
from email.policy import default

import pytest

from bot.daemon import replies
from bot.daemon.replies import Replying
from bot.folders import Outcome
from bot.sources.inbox import Inbox
from bot.state import State
from bot.words import APPLY_FAILED, BY_BASE_COMMIT, BY_BLOBS, BY_BRANCH, BY_TAG, ERROR, NO_BASE, PASS, REGRESSION

LIST = "xen-devel@lists.example.org"
REPLYING = Replying("bootbot <bootbot@example.org>", ["watchers@example.org"], {REGRESSION})


def outcome(verdict: str, by: str = BY_BASE_COMMIT, culprit: int | None = None) -> Outcome:
    patches = [{"index": k, "subject": f"x86: step {k}", "msgid": f"patch-{k}@example.org"} for k in (1, 2)]
    return Outcome(verdict, {"subject": "x86: steps", "version": 1, "author": "Ann", "patches": patches}, tree="xen",
                   base="b" * 40, base_by=by, culprit=culprit and patches[culprit - 1])


@pytest.mark.parametrize("verdict, by, reply_on, mailed", [
    (REGRESSION, BY_BASE_COMMIT, {REGRESSION}, True),
    (REGRESSION, BY_BLOBS, {REGRESSION}, True),          # a commit holding its files as they were: its own
    (REGRESSION, BY_TAG, {REGRESSION}, False),           # a guess blames nobody...
    (REGRESSION, BY_BRANCH, {REGRESSION, "guessed-base"}, True),   # ...unless the operator asks
    (NO_BASE, BY_BRANCH, {REGRESSION}, False),           # off by default
    (NO_BASE, BY_BRANCH, {NO_BASE}, True),
    (PASS, BY_BASE_COMMIT, {REGRESSION}, False),
    (APPLY_FAILED, "", {APPLY_FAILED}, True),            # a folder from before bootbot said how it found its base
])
def test_an_outcome_is_mailed_as_its_sources_policy_says(verdict, by, reply_on, mailed):
    assert replies.wanted(outcome(verdict, by), reply_on) == mailed


def mail(msgid: str, subject: str, parent: str | None = None) -> bytes:
    threading = f"In-Reply-To: <{parent}>\nReferences: <{parent}>\n" if parent else ""
    return (f"From: Ann Developer <ann@example.org>\nTo: {LIST}\nSubject: {subject}\nMessage-ID: <{msgid}>\n"
            f"{threading}Date: Fri, 04 Dec 2026 10:00:00 +0000\n\nthe patch\n").encode()


@pytest.fixture
def state(tmp_path) -> State:
    made = State(tmp_path / "bootbot.sqlite3")
    made.messages.add("cover@example.org", mail("cover@example.org", "[PATCH 0/2] x86: steps"), "cover@example.org",
                      None, "xen-devel")
    for k in (1, 2):
        made.messages.add(f"patch-{k}@example.org", mail(f"patch-{k}@example.org", f"[PATCH {k}/2] x86: step {k}",
                                                         "cover@example.org"), "cover@example.org",
                          "cover@example.org", "xen-devel")
        made.series.file_patch(f"patch-{k}@example.org", "cover@example.org", "x86: steps", "ann@example.org", 1, 2, k)
    made.series.file_patch("cover@example.org", "cover@example.org", "x86: steps", "ann@example.org", 1, 2, 0)
    made.jobs.queue(series_id=1)
    return made


def test_a_regression_is_answered_in_the_culprits_thread_to_its_author_cc_the_list(state, tmp_path):
    xen_devel = Inbox("xen-devel", state, {REGRESSION}, url="http://127.0.0.1:9/xen-devel", list_address=LIST,
                      mirrors=tmp_path / "m")
    made = replies.reply(state, [xen_devel], REPLYING, state.jobs.get(1), outcome(REGRESSION, culprit=2), tmp_path)
    parsed = email.message_from_bytes(bytes(made), policy=default)
    assert parsed["In-Reply-To"] == "<patch-2@example.org>" and parsed["To"] == "Ann Developer <ann@example.org>"
    assert parsed["Subject"] == "Re: [PATCH 2/2] x86: step 2"
    assert LIST in parsed["Cc"] and "watchers@example.org" in parsed["Cc"]
    assert parsed["Message-ID"] == "<bootbot-job-1@example.org>"   # a job's, whenever it is made


def test_a_lab_error_is_never_mailed_and_a_retest_always_is(state, tmp_path):
    job = state.jobs.get(1)
    assert replies.reply(state, [], REPLYING, job, outcome(ERROR), tmp_path) is None
    assert replies.reply(state, [], REPLYING, job, outcome(PASS), tmp_path) is None
    retest = mail("retest@example.org", "Re: [PATCH 0/2] x86: steps", "cover@example.org")
    state.messages.add("retest@example.org", retest, "cover@example.org", "cover@example.org", "xen-devel")
    state.jobs.queue(series_id=1, command_msgid="retest@example.org")
    answered = replies.reply(state, [], REPLYING, state.jobs.get(2), outcome(PASS), tmp_path)
    assert email.message_from_bytes(bytes(answered), policy=default)["In-Reply-To"] == "<retest@example.org>"
