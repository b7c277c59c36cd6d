"""Mail out: a report as a reply threaded under the patch it is about, and its delivery by SMTP."""
from __future__ import annotations

import email.message
import re
import smtplib
import ssl
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import getaddresses, parseaddr
from urllib.parse import urlsplit

# A msg-id as printable ASCII in angle brackets: nothing else taken from a parent reaches a header.
MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")
REPLY_PREFIX = re.compile(r"^(\s*re\s*:)+\s*", re.IGNORECASE)
DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
REASON_LENGTH = 200


class DeliveryError(Exception):
    pass


class _MessageIds(UnstructuredHeader):   # type: ignore[misc]  # the stubs miss BaseHeader's bases
    """References and In-Reply-To, folded between ids and never inside one: the stock folding
    RFC 2047-encodes an id longer than a line, and an encoded id no longer threads."""

    def fold(self, *, policy) -> str:
        return f"{self.name}: " + f"{policy.linesep} ".join(str(self).split()) + policy.linesep   # type: ignore[attr-defined]


def _policy():
    registry = HeaderRegistry()
    registry.map_to_type("references", _MessageIds)   # type: ignore[arg-type]
    registry.map_to_type("in-reply-to", _MessageIds)   # type: ignore[arg-type]
    # Long lines as they are: no header folded before its first word (a Subject on the next line),
    # and text/plain in 8bit (7bit when ASCII), never quoted-printable, as the list's mail is.
    return SMTP.clone(header_factory=registry, max_line_length=998)


POLICY = _policy()


def reply(parent: email.message.Message, body: str, sender: str, cc: list[str], message_id: str,
          to: list[str] | None = None, date: datetime | None = None) -> EmailMessage:
    """A reply to `parent` from `sender`, to `to` (else the parent's From); ValueError when the
    parent has no Message-ID or there is nobody to send it to."""
    parent_ids = MESSAGE_ID.findall(_header(parent, "Message-ID", raw=True))
    if not parent_ids:
        raise ValueError("the mail replied to has no Message-ID")
    if not to and not _addresses([_header(parent, "From")]):
        raise ValueError("the mail replied to has no From address")
    subject = REPLY_PREFIX.sub("", _one_line(_decoded(_header(parent, "Subject"))))
    message = new(f"Re: {subject}".rstrip(), body, sender, to or [_header(parent, "From")], cc, message_id, date)
    message["In-Reply-To"] = parent_ids[0]
    message["References"] = " ".join(_references(parent, parent_ids[0]))
    return message


def new(subject: str, body: str, sender: str, to: list[str], cc: list[str], message_id: str,
        date: datetime | None = None) -> EmailMessage:
    """A mail of the bot's; ValueError when `to` holds no address."""
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    addressed = _addresses(to)
    if not addressed:
        raise ValueError("nobody to send it to")
    message["To"] = addressed
    copied = _cc(addressed, cc)
    if copied:
        message["Cc"] = copied
    message["Subject"] = _one_line(subject)
    message["Date"] = date or datetime.now(UTC)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"   # RFC 3834: autoresponders must not answer it
    message["X-Bootbot"] = "report"                # how the bot knows its own mail on the list
    message.set_content(body, charset="utf-8")
    return message


def recipients(message: email.message.Message) -> list[str]:
    """Everyone a mail went to (To and Cc): whom a reply to all of it goes to."""
    return [_header(message, name) for name in ("To", "Cc") if _header(message, name)]


def review_copy(held: EmailMessage, number: int, moderator: str) -> EmailMessage:
    """The copy of held reply `number` that its moderator reviews: to the moderator alone, saying
    how to let it go to the list, or not."""
    message = EmailMessage(policy=POLICY)
    message["From"] = _header(held, "From")
    message["To"] = _addresses([moderator])
    message["Subject"] = f"[bootbot review #{number}] {_one_line(_header(held, 'Subject'))}"
    message["Date"] = datetime.now(UTC)
    message["Message-ID"] = make_message_id(f"review-{number}-{_header(held, 'Message-ID', raw=True)}",
                                            _header(held, "From"))
    message["Auto-Submitted"] = "auto-generated"
    message["X-Bootbot"] = "review"
    whom = ", ".join(filter(None, (_header(held, "To"), _header(held, "Cc"))))
    message.set_content(f"bootbot holds this reply until it is approved:\n"
                        f"    bootbot outbox approve {number}     (or: bootbot outbox drop {number})\n"
                        f"It goes to: {whom}\nin reply to: {_header(held, 'In-Reply-To', raw=True)}\n\n"
                        f"{held.get_content() if held.get_content_type() == 'text/plain' else ''}", charset="utf-8")
    return message


def make_message_id(key: str, sender: str) -> str:
    """The same id for the same report, so a retried delivery is recognised as one mail."""
    domain = parseaddr(sender)[1].rpartition("@")[2]
    if not domain:
        raise ValueError(f"sender {sender!r} has no domain")
    # A dot-atom: only letters, digits, hyphens and single dots inside.
    local = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9.-]+", "-", key)).rstrip(".")
    return f"<bootbot-{local}@{domain}>"


def _references(parent: email.message.Message, parent_id: str) -> list[str]:
    # RFC 5322 3.6.4: without References, the parent's In-Reply-To stands in for them.
    ancestors = MESSAGE_ID.findall(_header(parent, "References", raw=True) or _header(parent, "In-Reply-To", raw=True))
    return list(dict.fromkeys([*ancestors, parent_id]))


def _header(message: email.message.Message, name: str, raw: bool = False) -> str:
    """A header of the parent, "" when it has none: as its policy reads (decodes) it, else, or when
    `raw`, as sent. The default policies parse a header when it is read, and Python's parsers
    raise on odd values (3.11: IndexError on "From: ann@", "Message-ID: <@>") or cut a msg-id
    they do not like ("<a,b@c>" reads "<a")."""
    if not raw:
        try:
            return str(message.get(name) or "")
        except Exception:
            pass
    return next((str(value) for key, value in message.raw_items() if key.lower() == name.lower()), "")


def _cc(to: list[Address], candidates: list[str]) -> list[Address]:
    seen = {a.addr_spec.lower() for a in to}
    cc = []
    for address in _addresses(candidates):
        if address.addr_spec.lower() not in seen:
            seen.add(address.addr_spec.lower())
            cc.append(address)
    return cc


def _addresses(values: list[str]) -> list[Address]:
    """Addresses from header text, raw (compat32) or already decoded (the default policies)."""
    try:
        return [Address(_one_line(_decoded(name)), addr_spec=spec)
                for name, spec in getaddresses(values) if "@" in spec]
    except (ValueError, HeaderParseError) as e:
        raise ValueError(f"unusable address in {values}: {e}") from None


def _decoded(text: str) -> str:
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, ValueError):
        # A broken encoded-word is decoded leniently, bytes its charset cannot read as U+FFFD. Left
        # as sent, the reply's own header parser would decode it into text that Python 3.11 cannot
        # always fold back (UnicodeEncodeError when the reply is serialised).
        return str(SMTP.header_factory("subject", text))


def _one_line(text: str) -> str:
    """Folding collapsed to single spaces and control characters dropped, so no CR or LF can end
    the header early and start one of the sender's choosing; bytes Python could not decode
    (surrogate escapes, as compat32 reads 8-bit headers) read as UTF-8, else as U+FFFD, since
    Python 3.11 cannot fold them back beside other non-ASCII text."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:   # a surrogate that is no escaped byte
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return "".join(c for c in " ".join(text.split()) if unicodedata.category(c) != "Cc")


@dataclass(frozen=True)
class Smtp:
    url: str                 # "smtp://host:port", or "smtps://host:port" for implicit TLS
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0

    def __post_init__(self):
        self._endpoint()   # a bad URL is a configuration error, said at start-up, not at the first report

    def _endpoint(self) -> tuple[str, str, int]:
        parts = urlsplit(self.url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"SMTP URL {self.url!r} is not smtp://host:port or smtps://host:port")
        if parts.scheme == "smtps" and self.starttls:
            raise ValueError(f"SMTP URL {self.url!r}: smtps is already TLS, starttls does not apply")
        return parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]

    def send(self, message: EmailMessage) -> None:
        """Delivers to To and Cc; DeliveryError, with one line of reason, for any failure."""
        recipients = list(dict.fromkeys(address.addr_spec for name in ("To", "Cc")
                                        for header in message.get_all(name, [])
                                        for address in header.addresses))
        scheme, host, port = self._endpoint()
        try:
            with self._connect(scheme, host, port) as server:
                if self.starttls:
                    server.starttls(context=ssl.create_default_context())
                if self.username:
                    server.login(self.username, self.password)
                refused = server.send_message(message, to_addrs=recipients)
        except (OSError, UnicodeError) as e:   # smtplib's and ssl's errors are OSErrors
            raise DeliveryError(_line(f"{host}:{port}: {_reason(e)}")) from None
        if refused:
            # Accepted for some only: still a failure, since the list address may be among those refused.
            raise DeliveryError(_line(f"{host}:{port}: refused {_refusals(refused)}"))

    def _connect(self, scheme: str, host: str, port: int) -> smtplib.SMTP:
        if scheme == "smtps":
            return smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=ssl.create_default_context())
        return smtplib.SMTP(host, port, timeout=self.timeout)


def _reason(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"refused {_refusals(error.recipients)}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    return str(error) or type(error).__name__


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{address} ({code} {_text(text)})" for address, (code, text) in refused.items())


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def _line(text: str) -> str:
    line = _one_line(text)
    return line if len(line) <= REASON_LENGTH else line[:REASON_LENGTH - 3] + "..."
