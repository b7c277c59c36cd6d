"""Replies and their delivery, through a real SMTP server on loopback."""
from __future__ import annotations

import email
import email.message
import re
import time
from datetime import datetime, timezone
from email.policy import default

import pytest
from harness import LIST, PATCH, REPORT_ID, SENDER
from smtp_sink import SmtpSink

from bot.mail.reply import DeliveryError, Smtp, make_message_id, reply


def parsed(raw: bytes, policy=default) -> email.message.Message:
    return email.message_from_bytes(raw, policy=policy)


def report(parent: email.message.Message, body: str = "bootbot: PASS\n", extra_cc=()) -> email.message.EmailMessage:
    return reply(parent, body, SENDER, [LIST, *extra_cc], REPORT_ID, date=
                 datetime(2024, 7, 1, 12, 0, tzinfo=timezone.utc))


def header_lines(message: email.message.EmailMessage) -> list[bytes]:
    return message.as_bytes().split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.fixture
def sink():
    with SmtpSink() as running:
        yield running


@pytest.mark.parametrize("body", ["ascii only\n", "a console says \u2018d\u00e9j\u00e0 vu\u2019\n"])
def test_a_reply_keeps_a_long_subject_on_its_line_and_its_text_plain(body):
    """The list's conventions: the Subject begins on its own line however long; the body is
    text/plain in 7bit or 8bit with its long console lines as they are, never quoted-printable."""
    subject = "[PATCH v2 2/3] x86/boot: move the PVH entry where the loaders of every kind can find it"
    long_line = "[    0.000000] " + "x" * 150
    message = report(parsed(PATCH.replace(b"[PATCH v2 2/3] x86/boot: move the PVH entry", subject.encode())),
                     body=body + long_line + "\n")
    lines = header_lines(message)
    assert f"Subject: Re: {subject}".encode() in lines
    assert (b"Content-Transfer-Encoding: 7bit" if body.isascii() else b"Content-Transfer-Encoding: 8bit") in lines
    assert long_line.encode() in message.as_bytes().split(b"\r\n")


@pytest.mark.parametrize("policy", [email.policy.compat32, default])
def test_a_reply_threads_under_the_patch(policy):
    message = report(parsed(PATCH, policy), extra_cc=["Boris <boris@example.net>"])
    assert message["Subject"] == "Re: [PATCH v2 2/3] x86/boot: move the PVH entry"
    assert message["In-Reply-To"] == "<20240701100000.2-jane@example.com>"
    assert message["References"].split() == ["<20240620090000.0-jane@example.com>",
                                             "<20240701100000.0-jane@example.com>",
                                             "<20240701100000.2-jane@example.com>"]
    assert message["From"] == SENDER and message["To"] == "Jane Dev <jane@example.com>"
    assert [a.addr_spec for a in message["Cc"].addresses] == [LIST, "boris@example.net"]
    assert message["Message-ID"] == REPORT_ID
    assert message["Date"] == "Mon, 01 Jul 2024 12:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated" and message["X-Bootbot"] == "report"
    assert message.get_content_type() == "text/plain" and message.get_content_charset() == "utf-8"
    assert message["Bcc"] is None


@pytest.mark.parametrize("subject", ["Re: [PATCH] x86/boot: fix", "RE: re:[PATCH] x86/boot: fix"])
def test_re_is_not_doubled(subject):
    message = report(parsed(PATCH.replace(b"[PATCH v2 2/3] x86/boot: move the PVH entry", subject.encode())))
    assert message["Subject"] == "Re: [PATCH] x86/boot: fix"


def injected_raw() -> email.message.Message:
    parent = parsed(PATCH, email.policy.compat32)
    parent.replace_header("Subject", "[PATCH] x86/boot: fix\r\nBcc: victim@example.org")
    return parent


def injected_encoded() -> email.message.Message:
    return parsed(PATCH.replace(b"[PATCH v2 2/3] x86/boot: move the PVH entry",
                                b"=?utf-8?q?=5BPATCH=5D_x86/boot:_fix=0D=0ABcc:_victim@example.org?="))


@pytest.mark.parametrize("parent", [injected_raw, injected_encoded])
def test_a_subject_cannot_inject_a_header(parent):
    message = report(parent())
    assert message["Subject"] == "Re: [PATCH] x86/boot: fix Bcc: victim@example.org"
    assert message["Bcc"] is None
    assert not [line for line in header_lines(message) if line.lower().startswith(b"bcc")]
    assert parsed(message.as_bytes())["Bcc"] is None


def test_folded_subject_is_one_line():
    message = report(parsed(PATCH.replace(b"move the PVH entry", b"move the\n\t PVH   entry")))
    assert message["Subject"] == "Re: [PATCH v2 2/3] x86/boot: move the PVH entry"


def test_without_references_the_in_reply_to_stands_in():
    message = report(parsed(PATCH.replace(b"References: <20240620090000.0-jane@example.com>\n"
                                          b" <20240701100000.0-jane@example.com>\n", b"")))
    assert message["References"].split() == ["<20240701100000.0-jane@example.com>",
                                             "<20240701100000.2-jane@example.com>"]


def test_references_keep_order_without_duplicates():
    message = report(parsed(PATCH.replace(b" <20240701100000.0-jane@example.com>\n",
                                          b" <20240701100000.2-jane@example.com> <a@x> <a@x>\n")))
    assert message["References"].split() == ["<20240620090000.0-jane@example.com>",
                                             "<20240701100000.2-jane@example.com>", "<a@x>"]


def test_a_long_message_id_is_never_encoded():
    long_id = f"<20240701-x86-boot-{'pvh-entry-' * 8}v2-2-0123456789ab@kernel.example.org>"
    message = report(parsed(PATCH.replace(b"<20240701100000.2-jane@example.com>", long_id.encode())))
    lines = header_lines(message)
    assert f"In-Reply-To: {long_id}".encode() in lines and f" {long_id}".encode() in lines
    assert parsed(message.as_bytes())["References"].split()[-1] == long_id


def test_a_parent_without_message_id_is_refused():
    with pytest.raises(ValueError):
        report(parsed(PATCH.replace(b"Message-ID: <20240701100000.2-jane@example.com>\n", b"")))


def test_cc_repeats_no_one():
    parent = parsed(PATCH.replace(b"Jane Dev <jane@example.com>", b"Jane Dev <Jane@Example.com>"))
    message = report(parent, extra_cc=["JANE@example.com", f"Xen Devel <{LIST.upper()}>", "b@example.net"])
    assert [a.addr_spec for a in message["To"].addresses] == ["Jane@Example.com"]
    assert [a.addr_spec for a in message["Cc"].addresses] == [LIST, "b@example.net"]


def test_non_ascii_names_and_body_arrive_intact(sink):
    parent = parsed(PATCH.replace(b"Jane Dev", b"=?utf-8?q?J=C3=BCrgen_M=C3=BCller?="), email.policy.compat32)
    body = "Grüße from bootbot — every entry boots ✓\n"
    Smtp(sink.url).send(report(parent, body, extra_cc=["Zoë Ölberg <zoe@example.net>"]))
    [received] = sink.wait_for(1)
    assert received.sender == "bootbot@example.org"
    assert received.recipients == ["jane@example.com", LIST, "zoe@example.net"]
    assert received.raw.split(b"\r\n\r\n", 1)[0].isascii()
    mail = received.message
    assert [a.display_name for a in mail["To"].addresses] == ["Jürgen Müller"]
    assert [a.display_name for a in mail["Cc"].addresses] == ["", "Zoë Ölberg"]
    assert mail.get_content().splitlines() == body.splitlines()   # CRLF on the wire
    assert mail["Message-ID"] == REPORT_ID and mail["In-Reply-To"] == "<20240701100000.2-jane@example.com>"


def test_an_outage_is_a_delivery_error_and_the_retry_delivers_once(sink):
    message = report(parsed(PATCH))
    sink.stop()
    started = time.monotonic()
    with pytest.raises(DeliveryError) as refused:
        Smtp(sink.url, timeout=5).send(message)
    assert time.monotonic() - started < 2
    assert "refused" in str(refused.value).lower() and "\n" not in str(refused.value)
    sink.start()
    Smtp(sink.url, timeout=5).send(message)
    assert [r.message["Message-ID"] for r in sink.wait_for(1)] == [REPORT_ID]


def test_message_ids_are_deterministic_and_sanitized():
    key = "series/20240701100000.2-jane@example.com v2\r\nBcc: x"
    message_id = make_message_id(key, SENDER)
    assert message_id == make_message_id(key, SENDER) != make_message_id("other", SENDER)
    assert re.fullmatch(r"<bootbot-[A-Za-z0-9.-]+@example\.org>", message_id)
    assert make_message_id("pass.v2", SENDER) == "<bootbot-pass.v2@example.org>"
