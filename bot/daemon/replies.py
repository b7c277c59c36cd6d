"""The reply a check calls for. A mailed series is answered in its thread (to the first bad patch,
else its cover or single patch), to its author, Cc its lists; a branch's regression goes to the
culprit commit's author and committer, threaded to its posting (its Link:). Commands are always
answered; a change by its source's policy (reply_on); a lab error never, since it says nothing of
the author's work."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import requests

from bot.changes.series import SeriesError, parse_message
from bot.folders import Outcome
from bot.mail import reply as mail
from bot.reports import text
from bot.sources import Source
from bot.sources.inbox import Inbox
from bot.state import State
from bot.state.jobs import Job
from bot.words import ERROR, NO_BASE, ON_GUESSED_BASE

log = logging.getLogger("bootbot.replies")


@dataclass(frozen=True)
class Replying:
    """Who the bot is and whom it tells ([mail], [web] in the configuration)."""
    sender: str
    extra_cc: list[str]      # mail.cc: on every reply
    reply_on: set[str]       # mail.reply_on: for a change whose source is no longer configured
    pages: str = ""          # web.url: each reply links its check's page there


def reply(state: State, sources: list[Source], replying: Replying, job: Job, outcome: Outcome,
          folder: Path) -> EmailMessage | None:
    """The reply `job`'s outcome calls for, or None."""
    if outcome.verdict == ERROR:
        return None
    if job.series_id is not None:   # a mailed series'
        return _series_reply(state, sources, replying, job, job.series_id, outcome, folder)
    assert job.push_id is not None   # else a branch's
    return _push_reply(state, sources, replying, job, job.push_id, outcome, folder)


def wanted(outcome: Outcome, reply_on: set[str]) -> bool:
    """Whether a policy mails this outcome: it names its verdict, and, for a verdict reached on a
    guessed base (which blames no patch), checks on a guessed base too."""
    return outcome.verdict in reply_on and (outcome.known_base or outcome.verdict == NO_BASE
                                            or ON_GUESSED_BASE in reply_on)


def source_named(sources: list[Source], name: str | None) -> Source | None:
    return next((s for s in sources if s.name == name), None)


def _series_reply(state: State, sources: list[Source], replying: Replying, job: Job, series_id: int,
                  outcome: Outcome, folder: Path) -> EmailMessage | None:
    head, name = state.series.head_and_source(series_id)
    source = source_named(sources, name)
    if not (job.command_msgid or wanted(outcome, source.reply_on if source else replying.reply_on)):
        return None
    parent_id = job.command_msgid or (outcome.culprit["msgid"] if outcome.culprit else head)
    stored = state.messages.get(parent_id)
    if stored is None:
        log.warning("job %d: parent %s is not in the archive; no reply", job.id, parent_id)
        return None
    parent = parse_message(stored.raw)
    went_to = mail.recipients(parent)
    # posted to several lists the bot follows: each of them hears, whichever source brought it
    lists = [s.list_address for s in sources if isinstance(s, Inbox) and s.list_address
             and s.list_address.lower() in " ".join(went_to).lower()]
    cc = [*(source.cc if source else []), *lists, *replying.extra_cc]
    if source and source.reply_all:   # mail found anywhere: answered where it went
        cc = [*went_to, *cc]
    body = text.text(outcome, folder, replying.sender, replying.pages)
    return _made(replying, job, lambda message_id: mail.reply(parent, body, replying.sender, cc, message_id), parent_id)


def _push_reply(state: State, sources: list[Source], replying: Replying, job: Job, push_id: int,
                outcome: Outcome, folder: Path) -> EmailMessage | None:
    source = source_named(sources, state.pushes.get(push_id).source)
    if source is None or not wanted(outcome, source.reply_on):
        return None
    culprit = outcome.culprit or {}
    to = list(dict.fromkeys(filter(None, (culprit.get("author"), culprit.get("committer")))))
    cc = [*source.cc, *replying.extra_cc]
    body = text.text(outcome, folder, replying.sender, replying.pages)
    parent = _posting(state, culprit) if culprit.get("msgid") else None
    if parent is not None:
        return _made(replying, job, lambda message_id: mail.reply(parent, body, replying.sender, cc, message_id, to=to),
                     culprit["msgid"])
    return _made(replying, job, lambda message_id: mail.new(body.splitlines()[0], body, replying.sender, to or cc, cc,
                                                            message_id), source.name)


def _posting(state: State, culprit: dict) -> EmailMessage | None:
    """A commit's posting: from the state when a source brought it, else from its Link:."""
    stored = state.messages.get(culprit["msgid"])
    if stored is not None:
        return parse_message(stored.raw)
    try:
        answer = requests.get(f"{culprit['link'].rstrip('/')}/raw", timeout=30)
        answer.raise_for_status()
        return parse_message(answer.content)
    except (requests.RequestException, SeriesError) as e:
        log.warning("the posting of %s (%s) could not be read, so the mail starts a thread: %s",
                    culprit["commit"][:12], culprit["link"], e)
        return None


def _made(replying: Replying, job: Job, make: Callable[[str], EmailMessage], about: str) -> EmailMessage | None:
    try:
        return make(mail.make_message_id(f"job-{job.id}", replying.sender))
    except ValueError as e:   # no usable From or Message-ID to answer: nobody to reply to
        log.warning("job %d: cannot mail about %s: %s", job.id, about, e)
        return None
