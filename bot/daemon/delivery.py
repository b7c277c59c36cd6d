"""Delivery of the outbox: each pending reply sent when due, within the day's limit, a failure
waiting longer each time; held replies copied to the moderator once each; nothing sent while
muted. Every send is recorded in the transaction that makes it (bot/state/outbox.py)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from bot.changes.series import parse_message
from bot.config import ConfigError
from bot.mail import reply as mail
from bot.state import State
from bot.state.outbox import Delivery, Reply

log = logging.getLogger("bootbot.delivery")


@dataclass(frozen=True)
class Mailing:
    """How the bot's mail goes out ([mail] in the configuration)."""
    sender: str
    smtp: mail.Smtp | None        # None: to files in the state's outbox/
    files: Path                   # where mail goes without SMTP
    retry_seconds: list[float]    # waits after each failed delivery; the last repeats forever
    moderate: bool | str          # hold replies until approved; an address: and send it each for review
    mute: bool                    # send nothing; replies wait in the outbox
    max_per_day: int              # replies sent in any 24 hours, at most (0: no limit)


def mailing(config, files: Path) -> Mailing:
    url = config.get("mail", "smtp")
    try:
        smtp = None if url == "outbox" else mail.Smtp(url, starttls=config.get("mail", "starttls"),
                                                      username=config.get("mail", "username"),
                                                      password=config.get("mail", "password"))
    except ValueError as e:
        raise ConfigError(f"mail.smtp: {e}") from None
    return Mailing(config.get("mail", "from"), smtp, files, config.get("mail", "retry_seconds"),
                   config.get("mail", "moderate"), config.get("mail", "mute"), config.get("mail", "max_per_day"))


def deliver(state: State, mailing: Mailing) -> None:
    """Sends every pending reply that is due, within the day's limit; held ones go to the
    moderator for review, once each."""
    if mailing.mute:
        log.info("mail.mute: %d replies wait in the outbox", state.outbox.waiting())
        return
    if isinstance(mailing.moderate, str) and mailing.moderate:
        for reply in state.outbox.to_review():
            _once(state, mailing, reply, Delivery.REVIEW, mail.review_copy(parse_message(reply.raw), reply.id,
                                                                           mailing.moderate))
    budget = mailing.max_per_day - state.outbox.sent_in_a_day() if mailing.max_per_day else None
    for reply in state.outbox.due():
        if budget is not None and budget <= 0:
            if state.notices.first(f"max_per_day {time.strftime('%Y-%m-%d')}"):
                log.warning("mail.max_per_day (%d) reached: the other replies wait in the outbox", mailing.max_per_day)
            return
        if _once(state, mailing, reply, Delivery.REPLY, parse_message(reply.raw)) and budget is not None:
            budget -= 1


def _once(state: State, mailing: Mailing, reply: Reply, delivery: Delivery, message: EmailMessage) -> bool:
    wait = mailing.retry_seconds[min(reply.attempts, len(mailing.retry_seconds) - 1)]
    try:
        return state.outbox.deliver(reply, delivery, wait, lambda: send(mailing, message), mail.DeliveryError)
    except mail.DeliveryError as e:
        log.warning("reply %s not delivered (%s); next try in %d s", reply.message_id, e, wait)
        return False


def send(mailing: Mailing, message: EmailMessage) -> None:
    """One mail, now: through SMTP, or as a file."""
    if mailing.smtp is None:
        mailing.files.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("/", "_")
        (mailing.files / f"{name}.eml").write_bytes(message.as_bytes(policy=mail.POLICY))
    else:
        mailing.smtp.send(message)
