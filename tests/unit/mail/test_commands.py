"""Mail commands: where a command counts, reading the text a person wrote, what mail is automated,
and who may command the bot, DKIM signatures checked for real with a key made here."""
from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from harness import BOT_ADDRESSES, MAIL, MAINTAINERS

from bot.mail.commands import Command, authorized, is_automated, parse, plain_text

RETEST = Command("retest", ())


# parse

@pytest.mark.parametrize("body", [
    "@bootbot retest",
    "Thanks, I fixed the PVH note.\n\n@bootbot retest\n",
    "   @bootbot retest",
    "\t@bootbot retest  ",
    "@BootBot RETEST",
    "@bootbot retest\r\n",
])
def test_command_first_on_a_line(body):
    assert parse(body) == [RETEST]


@pytest.mark.parametrize("body", [
    "> @bootbot retest",
    ">@bootbot retest",
    "  > @bootbot retest",
    "> > @bootbot retest",
    ">> @bootbot retest",
    "please @bootbot retest this",
    "Could you ask @bootbot retest?",
    "@bootbot",
    "@bootbot please",
    "@bootbotretest",
    "@bootbot: retest",
    "@bootbot retest!",
    "bootbot retest",
    "@bootbot\u00a0retest",
    "@bootbot r\u0435test",   # a Cyrillic e
])
def test_not_a_command(body):
    assert parse(body) == []


def test_a_quoted_line_break_does_not_start_a_line():
    assert parse("> quoted\u2028@bootbot retest\n> again\r@bootbot retest") == []


def test_reply_below_quoted_command():
    body = "On Mon, Ann wrote:\n> @bootbot retest efi\n\nAgreed.\n@bootbot retest bios\n"
    assert parse(body) == [Command("retest", ("bios",))]


@pytest.mark.parametrize("end", ["-- \nAnn", "diff --git a/x b/x\n", "--- a/arch/x86/boot/main.c\n"])
def test_nothing_counts_after_a_signature_or_diff(end):
    assert parse(f"@bootbot retest\n{end}\n@bootbot retest efi\n") == [RETEST]


def test_quoted_diff_does_not_end_the_mail():
    assert parse("> diff --git a/x b/x\n> --- a/x\n@bootbot retest\n") == [RETEST]


def test_entries_lower_cased_deduplicated_in_order():
    assert parse("@bootbot retest PVH bios pvh\txen-pv") == [Command("retest", ("pvh", "bios", "xen-pv"))]


@pytest.mark.parametrize("entries", ["-bios", "bi_os", "b" * 33, "bïos", "bios,efi", "efi/bios",
                                     "\u212avm"])   # the Kelvin sign lower-cases to an ASCII k
def test_bad_entry_name_drops_the_command(entries):
    assert parse(f"@bootbot retest efi {entries}") == []


def test_longest_entry_name():
    assert parse("@bootbot retest " + "a" * 32) == [Command("retest", ("a" * 32,))]


def test_unknown_command_ignored_and_others_kept():
    assert parse("@bootbot frobnicate\n@bootbot retest\n") == [RETEST]


def test_limit():
    body = "".join(f"@bootbot retest e{n}\n" for n in range(10))
    assert parse(body) == [Command("retest", (f"e{n}",)) for n in range(3)]
    assert len(parse(body, limit=5)) == 5
    assert parse(body, limit=0) == []


# plain_text

def message(body: str = "@bootbot retest\n", **headers: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = headers.pop("From", "Ann Maintainer <ann@example.org>")
    mail["To"] = "bootbot@example.net"
    mail["Subject"] = "Re: [PATCH 0/2] x86/boot: fix the PVH note"
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    return mail


def test_plain_text_of_multipart_alternative():
    mail = message("Looks good.\n@bootbot retest pvh\n")
    mail.add_alternative("<p>@bootbot retest bios</p>", subtype="html")
    assert parse(plain_text(mail)) == [Command("retest", ("pvh",))]


def test_html_only_mail_has_no_text():
    mail = message()
    mail.set_content("<p>@bootbot retest</p>", subtype="html")
    assert plain_text(mail) == ""


def test_base64_part_with_attachments():
    mail = message()
    mail.set_content("Grüße\n@bootbot retest\n".encode(), "text", "plain", cte="base64")
    mail.add_attachment("@bootbot retest efi\n", filename="notes.txt")
    mail.add_attachment(message("@bootbot retest bios\n"))   # a forwarded mail
    assert plain_text(mail) == "Grüße\n@bootbot retest\n"


def test_attachment_before_the_text_is_skipped():
    mail = message()
    mail.make_mixed()
    mail.get_payload()[0].add_header("Content-Disposition", "attachment", filename="fix.patch")
    mail.add_attachment("@bootbot retest efi\n", disposition="inline")
    assert parse(plain_text(mail)) == [Command("retest", ("efi",))]


def raw_mail(content_type: str, body: bytes) -> email.message.Message:
    return email.message_from_bytes(b"From: ann@example.org\nContent-Type: " + content_type.encode()
                                    + b"\nContent-Transfer-Encoding: 8bit\n\n" + body)


def test_unknown_charset_read_as_utf8():
    mail = raw_mail("text/plain; charset=x-unknown", "caf\u00e9\n@bootbot retest\n".encode())
    assert plain_text(mail) == "caf\u00e9\n@bootbot retest\n"


def test_lying_charset_read_as_utf8_with_replacement():
    mail = raw_mail("text/plain; charset=us-ascii", b"caf\xe9\n@bootbot retest\n")
    assert plain_text(mail) == "caf\ufffd\n@bootbot retest\n"


def test_declared_charset_is_used():
    mail = raw_mail("text/plain; charset=iso-8859-1", b"caf\xe9\n")
    assert plain_text(mail) == "caf\u00e9\n"


def test_charset_the_standard_library_chokes_on():
    mail = raw_mail("text/plain; charset*=utf\0-8''x", b"@bootbot retest\n")
    assert plain_text(mail) == "@bootbot retest\n"


def test_huge_body_is_cut():
    mail = raw_mail("text/plain; charset=utf-8", b"x" * 300_000 + b"\n@bootbot retest\n")
    assert len(plain_text(mail)) == 256 * 1024
    assert parse(plain_text(mail)) == []


# is_automated

def test_a_person_is_not_automated():
    assert not is_automated(message(Auto_Submitted="no (a person)", Precedence="list"), BOT_ADDRESSES)


@pytest.mark.parametrize("headers", [
    {"From": "Bootbot <BootBot@Example.NET>"},
    {"From": "MAILER-DAEMON@mx.example.org"},
    {"From": "postmaster@example.org"},
    {"Auto_Submitted": "auto-replied"},
    {"Auto_Submitted": "auto-generated; owner-email=ann@example.org"},
    {"Auto_Submitted": "Auto-Notified"},
    {"X_Bootbot": "v1"},
    {"Precedence": "bulk"},
    {"Precedence": " Junk "},
    {"Precedence": "auto_reply"},
    {"X_Auto_Response_Suppress": "All"},
])
def test_automated(headers):
    assert is_automated(message(**headers), BOT_ADDRESSES)


def test_own_address_among_several_senders():
    assert is_automated(message(From="ann@example.org, bootbot@example.net"), BOT_ADDRESSES)


# authorized

@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    """A private key per signing domain, made once: 2048-bit keys take a moment."""
    return {domain: rsa.generate_private_key(public_exponent=65537, key_size=2048)
            for domain in ("example.org", "lists.example.net", "evil.example")}


@pytest.fixture
def dns(keys):
    """The DNS that publishes the public halves, as dkimpy asks it: selector s1."""
    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        for domain, key in keys.items():
            if name == f"s1._domainkey.{domain}.".encode():
                der = key.public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
                return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
        return None
    return txt


def signed(keys, raw: bytes, domain: str = "example.org", **options) -> bytes:
    pem = keys[domain].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption())
    return dkim.sign(raw, b"s1", domain.encode(), pem, **options) + raw


def mail_from(sender: str, body: str = "@bootbot retest\n") -> bytes:
    return message(body, From=sender).as_bytes()


def test_maintainer_without_dkim():
    assert authorized(mail_from("ANN@example.org"), MAINTAINERS, require_dkim=False)[0]


def test_outsider_refused():
    allowed, reason = authorized(mail_from("Mallory <mallory@evil.example>"), MAINTAINERS, require_dkim=False)
    assert not allowed and reason == "mallory@evil.example is not a maintainer"


@pytest.mark.parametrize("senders", ["ann@example.org, mallory@evil.example", "ann@example.org, ann@example.org"])
def test_two_senders_refused(senders):
    assert authorized(mail_from(senders), MAINTAINERS, require_dkim=False) == (
        False, "From holds 2 addresses, not one")


def test_two_from_headers_refused():
    raw = b"From: mallory@evil.example\n" + mail_from("ann@example.org")
    assert authorized(raw, MAINTAINERS, require_dkim=False) == (False, "From holds 2 addresses, not one")


def test_signed_by_maintainer_domain(keys, dns):
    raw = signed(keys, mail_from("Ann Maintainer <ann@example.org>"))
    assert authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=dns) == (
        True, "ann@example.org is a maintainer and signed the mail")


def test_parent_domain_signs_for_subdomain(keys, dns):
    raw = signed(keys, mail_from("bob@lists.example.org"))
    assert authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=dns)[0]


def test_tampered_body_refused(keys, dns):
    raw = signed(keys, mail_from("ann@example.org", "Looks fine.\n"))
    raw = raw.replace(b"Looks fine.", b"@bootbot retest")
    allowed, reason = authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=dns)
    assert not allowed and "body hash mismatch" in reason


def test_tampered_header_refused(keys, dns):
    raw = signed(keys, mail_from("ann@example.org")).replace(b"fix the PVH note", b"break everything")
    assert authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=dns) == (
        False, "ann@example.org: DKIM signature 1 does not verify")


def test_unsigned_refused_when_dkim_required(dns):
    assert authorized(mail_from("ann@example.org"), MAINTAINERS, require_dkim=True, dnsfunc=dns) == (
        False, "ann@example.org: the mail has no DKIM signature")


def test_valid_signature_of_another_domain_refused(keys, dns):
    raw = signed(keys, mail_from("ann@example.org"), "evil.example")
    assert authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=dns) == (
        False, "ann@example.org: DKIM signature 1 is by evil.example, not by example.org")


def test_domain_that_only_ends_alike_refused(keys, dns):
    raw = signed(keys, mail_from("ann@notexample.org"), "example.org")
    assert not authorized(raw, ["ann@notexample.org"], require_dkim=True, dnsfunc=dns)[0]


def test_list_signature_above_the_senders(keys, dns):
    raw = signed(keys, signed(keys, mail_from("ann@example.org")), "lists.example.net")
    assert authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=dns)[0]


def test_at_most_four_signatures_tried(keys, dns):
    raw = signed(keys, mail_from("ann@example.org"))
    for _ in range(4):
        raw = signed(keys, raw, "evil.example")
    lookups = []
    allowed, reason = authorized(raw, MAINTAINERS, True, lambda name, timeout=5: lookups.append(name) or dns(name))
    assert not allowed and reason.count("is by evil.example") == 4 and len(lookups) == 4


def test_signature_of_part_of_the_body_refused(keys, dns):
    raw = signed(keys, mail_from("ann@example.org", "Looks fine.\n"), length=True) + b"@bootbot retest\n"
    assert dkim.verify(raw, dnsfunc=dns)   # what dkimpy alone would let through
    allowed, reason = authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=dns)
    assert not allowed and reason.endswith("covers only part of the body (l=)")


class SaysItIsFrom(bytes):
    """A header name that dkimpy's signer takes for From, to make a signature other signers can:
    one that leaves From out, which dkimpy's verifier accepts."""
    def lower(self):
        return self

    def __eq__(self, other):
        return other == b"from" or bytes.__eq__(self, other)

    __hash__ = bytes.__hash__


def test_signature_without_from_refused(keys, dns):
    raw = signed(keys, mail_from("ann@example.org"), include_headers=[SaysItIsFrom(b"subject")])
    assert b"h=subject;" in raw and dkim.verify(raw, dnsfunc=dns)
    assert authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=dns) == (
        False, "ann@example.org: DKIM signature 1 does not cover From")


def test_unpublished_key_refused(keys):
    raw = signed(keys, mail_from("ann@example.org"))
    assert not authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=lambda name, timeout=5: None)[0]


def test_dns_failure_refused_not_raised(keys):
    def broken(name, timeout=5):
        raise OSError("resolver on fire")
    allowed, reason = authorized(signed(keys, mail_from("ann@example.org")), MAINTAINERS, True, broken)
    assert not allowed and reason == "ann@example.org: DKIM signature 1: resolver on fire"


# malformed mail

@pytest.mark.parametrize("path", sorted(MAIL.glob("*.eml")), ids=lambda p: p.name)
@pytest.mark.parametrize("policy", [email.policy.compat32, email.policy.default], ids=["compat32", "default"])
def test_malformed_mail_raises_nothing(path, policy, dns):
    raw = path.read_bytes()
    mail = email.message_from_bytes(raw, policy=policy)
    parse(plain_text(mail))
    is_automated(mail, BOT_ADDRESSES)
    for require_dkim in (False, True):
        allowed, reason = authorized(raw, MAINTAINERS, require_dkim, dns)
        assert reason


def test_malformed_corpus_is_there():
    assert len(list(MAIL.glob("*.eml"))) >= 5
