"""Commands in mail to the bot, and who may give them. A command counts only where its sender
wrote it: first on a line of their own text, not in quoted text, a signature or a patch, and a few
per mail at most. The bot never answers itself or any other automated mail."""
from __future__ import annotations

import email.message
import email.utils
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import dkim

_COMMANDS = ("retest",)

# "@bootbot", the command word and entry names, each apart by spaces or tabs. ASCII only: a
# look-alike letter must not turn into a command by lower-casing.
_COMMAND_LINE = re.compile(r"[ \t]*@bootbot[ \t]+([a-z]+)([ \t].*)?", re.ASCII | re.IGNORECASE)
_ENTRY = re.compile(r"[a-z0-9][a-z0-9-]{0,31}", re.ASCII | re.IGNORECASE)
_WORD = re.compile(r"[^ \t]+")
_DIFF_STARTS = ("diff --git", "--- a/")

_MAX_BODY = 256 * 1024   # bytes of a body read for commands; no person types more

_BULK_PRECEDENCE = {"bulk", "junk", "auto_reply"}
_DAEMONS = {"mailer-daemon", "postmaster"}

_MAX_SIGNATURES = 4   # each costs a DNS query, and anyone can add signatures to a mail


@dataclass(frozen=True)
class Command:
    name: str                      # "retest" (the only command for now)
    entries: tuple[str, ...]       # entry names given after it; empty means all affected entries


def parse(body: str, limit: int = 3) -> list[Command]:
    """The commands in a body, the first `limit` of them: a mail is a reply, not a script."""
    return list(itertools.islice(filter(None, map(_command, _own_lines(body))), limit))


def _own_lines(body: str) -> Iterator[str]:
    """The lines the sender wrote: not quoted, and before any signature or diff. Only "\\n" ends
    a line, so that other line breaks hidden in quoted text cannot start an unquoted line."""
    for line in body.split("\n"):
        line = line.removesuffix("\r")
        if line == "-- " or line.startswith(_DIFF_STARTS):
            return
        if not line.lstrip().startswith(">"):
            yield line


def _command(line: str) -> Command | None:
    match = _COMMAND_LINE.fullmatch(line)
    if not match or match[1].lower() not in _COMMANDS:
        return None
    names = _WORD.findall(match[2] or "")
    if not all(map(_ENTRY.fullmatch, names)):
        return None
    return Command(match[1].lower(), tuple(dict.fromkeys(name.lower() for name in names)))


def plain_text(message: email.message.Message) -> str:
    """The text/plain body a person wrote, "" when the mail has none."""
    part = _first_plain_part(message)
    return "" if part is None else _text(part)


def _first_plain_part(message: email.message.Message) -> email.message.Message | None:
    """Depth first through multiparts, but not into attached mails: a forwarded mail is someone
    else's words."""
    pending = [message]
    while pending:
        part = pending.pop()
        if part.get_content_maintype() == "multipart":
            if part.is_multipart():   # a multipart whose boundary is missing has only text
                pending.extend(reversed(part.get_payload()))   # type: ignore[arg-type]  # a multipart's: its parts
        elif part.get_content_type() == "text/plain" and part.get_content_disposition() != "attachment":
            return part
    return None


def _text(part: email.message.Message) -> str:
    """In the declared charset, else as utf-8, as most mail is: the charset may be unknown to
    Python, broken by the bytes, or hold a NUL that the standard library chokes on."""
    data: bytes = part.get_payload(decode=True)[:_MAX_BODY]   # type: ignore[index,assignment]  # decoded: bytes
    try:
        return data.decode(part.get_content_charset("utf-8"))
    except (LookupError, ValueError):   # ValueError covers UnicodeError
        return data.decode("utf-8", "replace")


def is_automated(message: email.message.Message, own_addresses: list[str]) -> bool:
    """Mail the bot must never answer, lest two bots answer each other for ever."""
    own = set(_addresses(own_addresses))
    senders = _addresses(_values(message, "From"))
    return (any(sender in own or sender.partition("@")[0] in _DAEMONS for sender in senders)
            or any(map(_auto_submitted, _values(message, "Auto-Submitted")))
            or "X-Bootbot" in message
            or any(value.strip().lower() in _BULK_PRECEDENCE for value in _values(message, "Precedence"))
            or "X-Auto-Response-Suppress" in message)


def _auto_submitted(value: str) -> bool:
    """RFC 3834: "no", maybe with a comment or parameters, is the one value a person sends."""
    keyword = re.sub(r"\([^()]*\)", "", value).split(";")[0]
    return keyword.strip().lower() != "no"


def authorized(raw: bytes, maintainers: list[str], require_dkim: bool, dnsfunc=None) -> tuple[bool, str]:
    """Whether the sender of a mail may command the bot, and a line for the log saying why."""
    message = email.message_from_bytes(raw)
    senders = _addresses(_values(message, "From"))
    if len(senders) != 1:
        return False, f"From holds {len(senders)} addresses, not one"
    sender = senders[0]
    if sender not in _addresses(maintainers):
        return False, f"{sender} is not a maintainer"
    if not require_dkim:
        return True, f"{sender} is a maintainer"
    refusal = _dkim_refusal(raw, len(_values(message, "DKIM-Signature")), sender.rpartition("@")[2], dnsfunc)
    if refusal:
        return False, f"{sender}: {refusal}"
    return True, f"{sender} is a maintainer and signed the mail"


def _dkim_refusal(raw: bytes, signatures: int, domain: str, dnsfunc) -> str | None:
    """Why no DKIM signature vouches for mail from `domain`; None when one does. Any signature
    may: a mailing list or relay can add its own above the sender's."""
    if not signatures:
        return "the mail has no DKIM signature"
    refusals = []
    for index in range(min(signatures, _MAX_SIGNATURES)):
        refusal = _signature_refusal(raw, index, domain, dnsfunc)
        if refusal is None:
            return None
        refusals.append(refusal)
    return "; ".join(refusals)


def _signature_refusal(raw: bytes, index: int, domain: str, dnsfunc) -> str | None:
    name = f"DKIM signature {index + 1}"
    try:
        verifier = dkim.DKIM(raw)
        valid = verifier.verify(index, dnsfunc=dnsfunc) if dnsfunc else verifier.verify(index)
    except Exception as e:   # dkimpy and its resolver raise much more than DKIMException on odd mail
        return f"{name}: {' '.join(str(e).split())[:100] or type(e).__name__}"
    if not valid:
        return f"{name} does not verify"
    signer = verifier.domain.decode("ascii", "replace").lower().rstrip(".")
    if domain != signer and not domain.endswith("." + signer):
        return f"{name} is by {signer}, not by {domain}"
    if b"from" not in verifier.include_headers:   # dkimpy does not insist on it, RFC 6376 does
        return f"{name} does not cover From"
    if b"l" in verifier.signature_fields:   # anyone could append commands to the signed part
        return f"{name} covers only part of the body (l=)"
    return None


def _values(message: email.message.Message, header: str) -> list[str]:
    """The values as the mail has them: some policies parse a header when it is read, and their
    parsers raise on odd mail."""
    return [str(value) for name, value in message.raw_items() if name.lower() == header.lower()]


def _addresses(values: Iterable[str]) -> list[str]:
    """Lower-cased addresses, from header values or configured addresses alike."""
    return [address.lower() for _, address in email.utils.getaddresses(list(values)) if address]
