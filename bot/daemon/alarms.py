"""The operator's alarms (mail.operator, [health]): each condition health.alarms raises is mailed
once, when it arises, and forgotten when it clears, so that one that comes back is told again.
Sent at once, not through the outbox (which may be what is stuck); one that fails is tried again
at the next cycle."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.daemon.delivery import Mailing, send
from bot.mail import reply as mail
from bot.reports import health
from bot.settings import Settings
from bot.state import State, now

log = logging.getLogger("bootbot.alarms")
KEY = "alarm:"   # before each condition's key in the notices


@dataclass(frozen=True)
class Alarming:
    operator: str            # who hears them
    limits: health.Limits


def check_safely(state: State, settings: Settings, alarming: Alarming | None, mailing: Mailing) -> None:
    """check(), where no alarm may stop the bot, nor hide why its cycle stopped."""
    try:
        check(state, settings, alarming, mailing)
    except Exception as e:
        log.warning("alarms not checked: %s", " ".join(f"{type(e).__name__}: {e}".split()))


def check(state: State, settings: Settings, alarming: Alarming | None, mailing: Mailing) -> None:
    if alarming is None or not alarming.operator:
        return
    now_health = health.read(settings.state)
    followed = {kind: str(site.path) for kind, site in settings.sites.items() if site and site.following}
    now_health.trees = {kind: tree for kind, tree in now_health.trees.items() if followed.get(kind) == tree["path"]}
    raised = health.alarms(now_health, alarming.limits)
    told = {key.removeprefix(KEY) for key in state.notices.keys(KEY)}
    for key in told - set(raised):
        state.notices.forget(KEY + key)
        log.info("alarm %s cleared", key)
    for key, said in raised.items():
        if key in told:
            continue
        message = mail.new(f"bootbot alarm: {said}"[:200], f"{said}\n\n" + "\n".join(health.lines(now_health)) + "\n",
                           mailing.sender, [alarming.operator], [],
                           mail.make_message_id(f"alarm-{key}-{int(now())}", mailing.sender))
        try:
            with state.transaction():
                state.notices.first(KEY + key)
                send(mailing, message)
        except mail.DeliveryError as e:
            log.warning("alarm %s not delivered (%s); tried again next cycle", key, e)
