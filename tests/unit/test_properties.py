"""Property-based tests (hypothesis) of what anyone on the list controls: the mail bootbot reads, the
commands in it, the console of a boot, and the headers of a reply built from a stranger's mail.

Each test states its property in its name and docstring; all run in-process, in seconds."""
from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import re
import signal
from datetime import datetime, timezone
from pathlib import Path

import b4
import pytest
from conftest import ENTRIES, PATTERNS, marker
from harness import BOT_ADDRESSES, LIST, MAIL, MAINTAINERS, PATCH, REPORT_ID, SENDER
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from tiny_tree import make_repo, patches

from bot.boots.console import Console, clean
from bot.changes import series as series_module
from bot.changes.series import SeriesError, from_messages, parse_message, read_mbox
from bot.mail.commands import Command, authorized, is_automated, parse, plain_text
from bot.mail.reply import MESSAGE_ID, REPLY_PREFIX, make_message_id, reply
from bot.words import FAIL, PASS

SOME = settings(max_examples=150, deadline=None)
FEW = settings(max_examples=100, deadline=None)   # for the slower b4 round trips
HANG_SECONDS = 10


@contextlib.contextmanager
def no_hang(seconds: float = HANG_SECONDS):
    """Fails the example (pytest's Failed, which hypothesis shrinks) when the call takes longer."""
    def alarm(signum, frame):
        pytest.fail(f"took more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Text as mail carries it: any character, with the ones that end or structure a header often, and
# the surrogate escapes Python reads undecodable bytes as.
MAIL_TEXT = st.lists(st.one_of(st.characters(exclude_categories=["Cs"]),
                               st.sampled_from("\r\n\t \"<>@;:,=?()\\[]\x00\x0b\x1b\u2028\u0085"),
                               st.sampled_from(["\udcc3\udcbc", "\udcff"])), max_size=120).map("".join)
CHARSETS = st.one_of(st.sampled_from(["utf-8", "us-ascii", "iso-8859-1", "utf-16", "utf-7", "shift_jis",
                                      "iso-2022-jp", "x-unknown", "", "utf\x00-8", "utf-8\r\nBcc: x"]),
                     st.text(max_size=12))


def encoded(text: str, charset: str = "utf-8", how: str = "b") -> str:
    """One RFC 2047 encoded word: decoders turn it back into `text`, CR and LF included."""
    data = text.encode(charset, "surrogateescape")
    payload = base64.b64encode(data).decode() if how == "b" else "".join(f"={byte:02X}" for byte in data)
    return f"=?{charset}?{how}?{payload}?="


@st.composite
def header_value(draw) -> bytes:
    text = draw(MAIL_TEXT)
    form = draw(st.sampled_from(["utf-8", "latin-1", "encoded-word", "bytes"]))
    if form == "encoded-word":
        return encoded(text, "utf-8", draw(st.sampled_from("bq"))).encode()
    if form == "bytes":
        return draw(st.binary(max_size=80))
    return text.encode(form, "replace")


HEADER_NAMES = [b"From", b"To", b"Cc", b"Subject", b"Message-ID", b"In-Reply-To", b"References", b"Date",
                b"MIME-Version", b"Content-Type", b"Content-Transfer-Encoding", b"Content-Disposition",
                b"Auto-Submitted", b"Precedence", b"DKIM-Signature", b"X-Bootbot"]


def with_header(raw: bytes, name: bytes, value: bytes) -> bytes:
    """`raw` with its (first) `name` header's value, folded lines included, replaced; added when absent."""
    field = re.compile(rb"(?mi)^" + re.escape(name) + rb":[^\n]*(?:\n[ \t][^\n]*)*")
    replaced, count = field.subn(lambda _: name + b": " + value, raw, count=1)
    return replaced if count else name + b": " + value + b"\n" + raw


@st.composite
def mutated(draw, raw: bytes) -> bytes:
    """A real mail broken the ways list mail comes broken: odd header values (CR, LF, encoded words,
    undecodable bytes), charsets, transfer encodings, cut short, spliced with bytes."""
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["header", "charset", "encoding", "truncate", "splice"]))
        if kind == "header":
            raw = with_header(raw, draw(st.sampled_from(HEADER_NAMES)), draw(header_value()))
        elif kind == "charset":
            subtype = draw(st.sampled_from([b"text/plain", b"text/html", b"multipart/mixed", b"message/rfc822"]))
            raw = with_header(raw, b"Content-Type",
                              subtype + b"; charset=" + draw(CHARSETS).encode("utf-8", "surrogateescape"))
        elif kind == "encoding":
            raw = with_header(raw, b"Content-Transfer-Encoding",
                              draw(st.sampled_from([b"base64", b"quoted-printable", b"8bit", b"x-uuencode", b"bogus"])))
        elif kind == "truncate":
            raw = raw[:draw(st.integers(0, len(raw)))]
        else:
            start = draw(st.integers(0, len(raw)))
            end = draw(st.integers(start, min(len(raw), start + 64)))
            raw = raw[:start] + draw(st.binary(max_size=64)) + raw[end:]
    return raw


@pytest.fixture(scope="module", autouse=True)
def b4_settings():
    series_module.configure_b4("http://127.0.0.1:9/unused")
    b4.can_network = False


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


class Mails(list):
    """Mails that hypothesis names briefly when it reports a failing example."""
    def __repr__(self) -> str:
        return f"<{len(self)} mails>"


@pytest.fixture(scope="module")
def thread(workdir) -> Mails:
    """A real series as `git format-patch` mails it (cover and two patches), made once."""
    return Mails(p.read_bytes() for p in patches(make_repo(workdir), workdir / "v1", 1))


@pytest.fixture(scope="module")
def corpus(thread) -> Mails:
    """Every mail the other tests know: the malformed corpus, a posted patch, a real series."""
    return Mails([p.read_bytes() for p in sorted(MAIL.glob("*.eml"))] + [PATCH] + thread)


# 1. Mail and series parsing

def read_every_way(message) -> None:
    """What bootbot's own code reads of any mail on the list for its commands. Not header values
    through the default policy: Python 3.11's own parser raises IndexError on some (e.g. on
    "From: ann@"), which the assembly's per-message guard catches."""
    parse(plain_text(message))
    is_automated(message, BOT_ADDRESSES)


def parsed(raw: bytes):
    """parse_message's result, None when it refuses the bytes, as it may, with SeriesError."""
    try:
        return parse_message(raw)
    except SeriesError as e:
        assert str(e)
        return None


UNPARSABLE = b"Subject: x\nContent-Type: text/plain; a*\n\nbody\n"   # Python 3.11 raises IndexError


@SOME
@given(raw=st.one_of(st.binary(max_size=2000),
                     st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value()), max_size=8).flatmap(
                         lambda headers: st.binary(max_size=300).map(
                             lambda body: b"".join(n + b": " + v + b"\n" for n, v in headers) + b"\n" + body))))
@example(raw=UNPARSABLE)
def test_arbitrary_bytes_parse_and_read_without_raising(raw):
    """parse_message takes any bytes, giving a message or SeriesError, and reading a mail (its text,
    commands, whether it is automated, who sent it) raises nothing; nothing hangs."""
    with no_hang():
        if (message := parsed(raw)) is not None:
            read_every_way(message)
        read_every_way(email.message_from_bytes(raw))   # authorized() reads with compat32
        assert authorized(raw, MAINTAINERS, require_dkim=True, dnsfunc=lambda name, timeout=5: None)[1]


@SOME
@given(data=st.data())
def test_mutated_real_mail_parses_and_reads_without_raising(corpus, data):
    """Real mails with broken headers (CR/LF, encoded words, bad bytes), charsets, transfer
    encodings, truncation and splices: parsed and read without raising or hanging."""
    raw = data.draw(st.sampled_from(corpus).flatmap(mutated), label="raw")
    with no_hang():
        if (message := parsed(raw)) is not None:
            read_every_way(message)
        read_every_way(email.message_from_bytes(raw))
        for require_dkim in (False, True):
            assert authorized(raw, MAINTAINERS, require_dkim, dnsfunc=lambda name, timeout=5: None)[1]


def test_the_real_series_reads(thread):
    """The unmutated thread is a series: the mutations below start from something that parses."""
    series = from_messages(list(map(parse_message, thread)), "<thread>")
    assert len(series.patches) == 2 and series.files == ["arch/x86/boot/main.c"]


@FEW
@given(control=st.characters(categories=["Cf"]), where=st.sampled_from([b"Signed-off-by: Ann", b"+int v1_1"]))
@example(control="\u202e", where=b"Signed-off-by: Ann")   # RIGHT-TO-LEFT OVERRIDE, of "Trojan Source"
def test_a_patch_with_unicode_controls_is_read_or_refused_never_exits(thread, control, where):
    """b4 calls sys.exit() on a patch line holding a Unicode format character (bidi override,
    zero-width space, soft hyphen) and no other-script letter: from_messages gives a Series or
    SeriesError, never SystemExit, which would end the bot's process."""
    patch = with_header(thread[1], b"Content-Type", b"text/plain; charset=UTF-8")
    mails = [thread[0], patch.replace(where, where + control.encode(), 1), thread[2]]
    try:
        from_messages(list(map(parse_message, mails)), "<thread>")
    except SeriesError as e:
        assert str(e)
    except SystemExit:
        pytest.fail("b4 ended the process")


@FEW
@given(ids=st.lists(st.sampled_from(["keep", "drop", "empty"]), min_size=3, max_size=3))
def test_a_series_reads_the_same_without_message_ids(thread, ids):
    """A Message-ID missing or empty (as `git format-patch` without --thread, or a broken mailer,
    sends) is made up: the series reads the same."""
    mails = [mail if keep == "keep" else
             re.sub(rb"(?mi)^Message-Id:[^\n]*\n", b"Message-ID: \n" if keep == "empty" else b"", mail, count=1)
             for mail, keep in zip(thread, ids)]
    series = from_messages(list(map(parse_message, mails)), "<thread>")
    assert [p.subject for p in series.patches] == ["x86/boot: step 1", "x86/boot: step 2"]
    assert series.files == ["arch/x86/boot/main.c"] and all(p.msgid for p in series.patches)


@FEW
@given(data=st.data())
def test_mutated_series_is_read_or_refused_with_series_error(thread, workdir, data):
    """A series whose mails are broken, reordered, dropped or repeated: from_messages and read_mbox
    give a Series or raise SeriesError, nothing else, and never hang."""
    mails = list(thread)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        index = data.draw(st.integers(0, len(mails) - 1), label="which")
        mails[index] = data.draw(mutated(mails[index]), label="mail")
    mails = data.draw(st.permutations(mails), label="order")
    if data.draw(st.booleans(), label="drop or repeat"):
        index = data.draw(st.integers(0, len(mails) - 1))
        mails = mails[:index] + mails[index + 1:] if data.draw(st.booleans()) else mails + [mails[index]]
    path = workdir / "mutated.mbox"
    path.write_bytes(b"".join(mail if mail.endswith(b"\n") else mail + b"\n" for mail in mails))
    with no_hang():
        for read in (lambda: from_messages(list(map(parse_message, mails)), "<thread>"), lambda: read_mbox(path)):
            try:
                series = read()
            except SeriesError as e:
                assert str(e)
            else:
                assert series.patches and all(isinstance(m, bytes) and m for m in series.am_messages)


@SOME
@given(raw=st.one_of(st.binary(max_size=3000), st.binary(max_size=3000).map(lambda b: b"From x\n" + b),
                     st.binary(max_size=3000).map(lambda b: b"From: a@b\nSubject: [PATCH] x\n\n" + b)))
@example(raw=b"From x\n" + UNPARSABLE)
def test_arbitrary_mbox_is_read_or_refused_with_series_error(workdir, raw):
    """read_mbox of any file: a Series or SeriesError, never another exception, never a hang."""
    path = workdir / "arbitrary.mbox"
    path.write_bytes(raw)
    with no_hang():
        with contextlib.suppress(SeriesError):
            read_mbox(path)


# 2. Commands

ENTRY = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)
# A command line in parts: indent, "@bootbot", gap, command word, entries, line end.
COMMAND_LINE = st.tuples(st.sampled_from(["", " ", "\t", "  \t"]),
                         st.sampled_from(["@bootbot", "@BootBot", "@BOOTBOT"]),
                         st.sampled_from([" ", "\t", " \t "]), st.sampled_from(["retest", "Retest", "RETEST"]),
                         st.lists(ENTRY, max_size=3), st.sampled_from(["", " ", "\t", "\r"]))
TERMINATORS = ["-- ", "-- \r", "diff --git a/x b/x", "--- a/arch/x86/boot/main.c"]
# Text around commands: any character, with line breaks, quote marks and the words of a command often.
BODY = st.lists(st.one_of(st.characters(), st.sampled_from(["\n", "\r", "\r\n", ">", " ", "\t", "@bootbot", "retest",
                                                           "-- ", "\u2028", "\x85", "diff --git"])),
                max_size=80).map("".join)


def command_text(parts) -> tuple[str, Command]:
    indent, at, gap, word, entries, end = parts
    line = f"{indent}{at}{gap}{word}" + "".join(f" {e}" for e in entries) + end
    return line, Command("retest", tuple(dict.fromkeys(entries)))


def terminated(text: str) -> bool:
    """Whether a signature or diff ends the sender's own text within `text`."""
    return any(line.removesuffix("\r") == "-- " or line.startswith(("diff --git", "--- a/"))
               for line in text.split("\n"))


ALL = 10 ** 6


@SOME
@given(body=BODY, limit=st.integers(0, 6))
@example(body="@bootbot retest\n" * 5, limit=3)
def test_any_text_parses_into_at_most_limit_valid_commands(body, limit):
    """Arbitrary text never raises; it gives at most `limit` commands, the first ones of the mail,
    each a known command with lower-case ASCII entry names."""
    commands = parse(body, limit)
    assert len(commands) <= limit
    assert commands == parse(body, ALL)[:limit]
    for command in commands:
        assert command.name == "retest"
        assert all(re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", e) for e in command.entries)
        assert len(set(command.entries)) == len(command.entries)


@SOME
@given(before=BODY, parts=COMMAND_LINE, after=BODY)
def test_a_command_line_survives_any_surrounding_text(before, parts, after):
    """A command on a line of its own counts whatever text stands before and after it, provided no
    signature or diff started before it and fewer than three commands came first."""
    assume(not terminated(before) and len(parse(before, ALL)) < 3)
    line, command = command_text(parts)
    assert parse(f"{before}\n{line}\n{after}")[len(parse(before, ALL))] == command


@SOME
@given(first=BODY, second=BODY, limit=st.integers(0, 6))
def test_commands_of_joined_text_are_those_of_each_part(first, second, limit):
    """Line by line: the commands of `first\\nsecond` are those of `first` then those of `second`
    (when `first` has no signature or diff), the first `limit` of them."""
    assume(not terminated(first))
    assert parse(f"{first}\n{second}", limit) == (parse(first, ALL) + parse(second, ALL))[:limit]


@SOME
@given(before=BODY, terminator=st.sampled_from(TERMINATORS), after=BODY, parts=COMMAND_LINE)
def test_nothing_counts_after_a_signature_or_diff(before, terminator, after, parts):
    """Text after a signature line or the start of a diff, a command line included, adds no command."""
    line, _ = command_text(parts)
    assert parse(f"{before}\n{terminator}\n{after}\n{line}\n{after}", ALL) == parse(before, ALL)


@SOME
@given(body=BODY, parts=COMMAND_LINE, quote=st.sampled_from([">", "> ", ">>", "> > ", " > ", "\t>", "\u3000>"]))
@example(body="", parts=("", "@bootbot", " ", "retest", [], ""), quote="> ")
def test_quoted_text_never_commands(body, parts, quote):
    """A quoted mail (every line starting with ">" after blanks) holds no command, not even a
    command line, however the quoted text breaks its lines (CR, U+2028, NEL)."""
    line, _ = command_text(parts)
    quoted = "\n".join(quote + text for text in f"{body}\n{line}\n{body}".split("\n"))
    assert parse(quoted, ALL) == []


# Characters that break lines for str.splitlines() and some mail readers, but end no line in a mail body.
OTHER_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@SOME
@given(prefix=st.lists(st.one_of(st.characters(exclude_characters="\n"), st.sampled_from(OTHER_BREAKS)),
                       min_size=1, max_size=40).map("".join), parts=COMMAND_LINE)
@example(prefix="> quoted\u2028", parts=("", "@bootbot", " ", "retest", [], ""))
def test_a_command_only_at_the_start_of_a_line(prefix, parts):
    """Text before "@bootbot" on its line, other than spaces and tabs, makes it no command, also
    when that text ends in a character other programs break lines at (CR, U+2028, NEL)."""
    assume(prefix.strip(" \t"))
    line, _ = command_text(parts)
    assert parse(prefix + line.lstrip(" \t"), ALL) == []


# 3. Console

NONCE = "0123456789abcdef"
MARKER = marker(NONCE)
PANICS = ["Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
          "Oops: 0002 [#1] PREEMPT SMP NOPTI", "BUG: unable to handle page fault for address: ffff",
          "general protection fault, probably for non-canonical address 0xdead: 0000 [#1]",
          "PANIC: early exception 0x0e IP 10:ffffffff81000000 error 0 cr2 0x0",
          "INFO: rcu_sched self-detected stall on CPU", "watchdog: BUG: soft lockup - CPU#0 stuck for 22s!"]
ANYWHERE = ["(XEN) Panic on CPU 0:", "(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.",
            "XZ-compressed data is corrupt -- System halted", "!!!! X64 Exception Type - 0D(#GP - General Protection)"]
ESCAPES = st.sampled_from(["", "\x1b[2J", "\x1b[01;01H", "\x1b[0m", "\x1b(B", "\x1bc", "\x1b[?25l\x1b[0;37;40m"])
TIMESTAMPS = st.sampled_from(["", "[    0.000000] ", "[ 1234.567890]", "[1.5]  "])
CONSOLE_TEXT = st.lists(st.one_of(st.characters(exclude_characters="\n"),
                                  st.sampled_from(["\r", "\x1b", "\x1b[", "\x00"])), max_size=120).map("".join)
# What QEMU's serial port gives the classifier: text, bytes decoded with replacement, and long lines.
CONSOLE_LINE = st.one_of(
    CONSOLE_TEXT,
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"").decode("utf-8", "replace")),
    st.tuples(CONSOLE_TEXT, st.integers(100, 5000)).map(lambda t: t[0] * t[1]),
    st.sampled_from(["[" + " " * 100_000 + "x", "[" + " " * 40 + "1", "[ 1." + "1" * 100_000,   # no backtracking blowup
                     "INFO: rcu_" + "x" * 100_000 + " stall", "\x1b[" + "0;" * 50_000, "(XEN) " * 20_000]))


def console() -> Console:
    return Console(ENTRIES["bios"].success_pattern(NONCE), PATTERNS)


def harmless(line: str) -> bool:
    return not PATTERNS.failure(clean(line), bare=True) and MARKER not in clean(line)


@SOME
@given(lines=st.lists(CONSOLE_LINE, max_size=20))
def test_any_console_line_is_classified_without_raising(lines):
    """Any line (text, undecodable bytes, very long) is classified without raising or hanging: no
    decision, or pass/fail with the cleaned line, free of CR, as the reason."""
    reader = console()
    with no_hang(2):
        for line in lines:
            decision = reader.feed(line)
            assert decision is None or (decision.status in (PASS, FAIL) and decision.reason == clean(line)
                                        and decision.reason and "\r" not in decision.reason)


@SOME
@given(noise=st.lists(CONSOLE_LINE, max_size=10), escape=ESCAPES, timestamp=TIMESTAMPS,
       before=CONSOLE_TEXT.filter(lambda t: "\x1b" not in t), after=CONSOLE_TEXT,
       end=st.sampled_from(["", "\r", " \r"]))
def test_the_marker_passes_after_harmless_noise(noise, escape, timestamp, before, after, end):
    """After lines that hold no failure, the line holding the marker passes, whatever text,
    escapes or timestamp surround it on its line, unless that line itself holds a failure."""
    with no_hang(2):
        noise = [line for line in noise if harmless(line)]
        reader = console()
        assert [reader.feed(line) for line in noise] == [None] * len(noise)
        line = f"{escape}{timestamp}{before}{MARKER}{after}{end}"
        assume(not PATTERNS.failure(clean(line), bare=True))
        decision = reader.feed(line)
    assert decision.status == PASS and MARKER in decision.reason and "\r" not in decision.reason


@SOME
@given(noise=st.lists(CONSOLE_LINE, max_size=10), escape=ESCAPES, timestamp=TIMESTAMPS,
       panic=st.sampled_from(PANICS), anywhere=st.sampled_from(ANYWHERE), text=CONSOLE_TEXT,
       end=st.sampled_from(["", "\r", " \r", " " + MARKER]), rest=st.lists(CONSOLE_LINE, max_size=5))
def test_a_failure_after_any_noise_fails_even_with_the_marker_later(noise, escape, timestamp, panic, anywhere,
                                                                     text, end, rest):
    """Arbitrary noise (no marker in it), then a kernel panic line or a line with a hypervisor or
    decompressor crash anywhere in it (the marker maybe on the same line), then anything and the
    marker: the boot fails, never passes."""
    assume(not any(MARKER in clean(line) for line in noise))
    for failure in (f"{escape}{timestamp}{panic}{end}", f"{escape}{text.replace(chr(27), '')}{anywhere}{end}"):
        reader = console()
        with no_hang(2):
            decisions = [reader.feed(line) for line in [*noise, failure, *rest, MARKER]]
        first = next(v for v in decisions if v)
        assert first.status == FAIL


@SOME
@given(prefix=st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,30} ", fullmatch=True), panic=st.sampled_from(PANICS))
def test_kernel_failure_words_count_only_at_the_start_of_a_line(prefix, panic):
    """Userspace text that merely mentions a kernel failure word mid-line, without printk's
    prefix before it, does not fail the boot."""
    line = prefix + panic
    assume(not any(re.search(p, line) for p in (r"-- System halted", r"Hardware Dom0 crashed", r"PANIC: early exception")))
    assert console().feed(line) is None


# 4. Reply headers

DATE = datetime(2024, 7, 1, 12, 0, tzinfo=timezone.utc)
MSG_ID = st.from_regex(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,80}>", fullmatch=True)
NO_ID = MAIL_TEXT.filter(lambda t: "<" not in t)   # text around an id, holding no id itself
LOCAL = st.one_of(st.from_regex(r"[A-Za-z0-9._%+-]{1,20}", fullmatch=True),
                  st.text(st.characters(codec="ascii", exclude_characters='"\\'), min_size=1, max_size=20).map(
                      lambda t: f'"{t}"'))
DOMAIN = st.from_regex(r"[a-z0-9]{1,10}\.(org|com|net)", fullmatch=True)
EXPECTED = sorted(["from", "to", "subject", "date", "message-id", "in-reply-to", "references", "auto-submitted",
                   "x-bootbot", "mime-version", "content-type", "content-transfer-encoding"])


CHARSET_NAMES = ["utf-8", "us-ascii", "x-unknown"]


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def parent_headers(draw) -> tuple[str, str, str, str]:
    """Subject, Message-ID and From of a mail to reply to, as anyone may write them: raw with CR and
    LF, RFC 2047 encoded (which decodes to CR and LF too), non-ASCII, very long; and how the bot
    has the mail: "object" (built in memory, compat32) or "bytes" (read by parse_message, as the
    daemon does, where a line break starts another header)."""
    subject = draw(st.sampled_from(["", "Re: ", "RE:re: ", "re : ", " Re:Re: "])) + draw(
        st.one_of(MAIL_TEXT, MAIL_TEXT.map(lambda t: t * 30)))
    msgid_value = draw(NO_ID) + draw(MSG_ID) + draw(MAIL_TEXT)
    name = draw(MAIL_TEXT)
    form = draw(st.sampled_from(["raw", "encoded", "encoded bytes"]))
    if form == "encoded":
        subject, name = encoded(subject), encoded(name)
    elif form == "encoded bytes":   # bytes that are no text in the charset named, or half of it
        subject, name = (draw(st.sampled_from(["", "Re: ", "x "])) + "=?" + draw(st.sampled_from(CHARSET_NAMES))
                         + "?b?" + base64.b64encode(draw(st.binary(max_size=30))).decode() + "?=" for _ in range(2))
    else:
        name = quoted(name)
    transport = draw(st.sampled_from(["object", "bytes"]))
    sender = draw(st.one_of(st.tuples(LOCAL, DOMAIN).map(lambda address: f"{name} <{address[0]}@{address[1]}>"),
                            MAIL_TEXT, st.sampled_from(["ann@", "<@>", "Ann <ann@example.org", "a@b, @c"])))
    values = (subject, msgid_value, sender)
    if transport == "bytes":
        values = tuple(re.sub(r"[\r\n]", " ", value) for value in values)
    return (transport, *values)


def parent_mail(transport: str, subject: str, msgid_value: str, sender: str) -> email.message.Message:
    if transport == "bytes":
        head = f"Subject: {subject}\nMessage-ID: {msgid_value}\nFrom: {sender}\n\n"
        return parse_message(head.encode("utf-8", "surrogateescape") + PATCH.split(b"\n\n", 1)[1])
    parent = email.message_from_bytes(PATCH, policy=email.policy.compat32)
    parent.replace_header("Subject", subject)
    parent.replace_header("Message-ID", msgid_value)
    parent.replace_header("From", sender)
    return parent


# The parent's From when it is a name and a plain address on one line; group 3 is the domain.
PLAIN_FROM = re.compile(r'(".*"|=\?[^?]*\?b\?[A-Za-z0-9+/=]*\?=) <[A-Za-z0-9%+_-]+(\.[A-Za-z0-9%+_-]+)*'
                        r'@([a-z0-9]{1,10}\.(org|com|net))>')
CC = st.lists(st.sampled_from(["Boris <boris@example.net>", "Zoë <zoe@example.net>", "jane@example.com"]), max_size=2)


@SOME
@example(headers=("object", "x", "<0@x>", "=?utf-8?b?woDtoIA=?= <ann@example.org>"), extra_cc=[])  # U+0080, bad UTF-8
@example(headers=("object", "x", "<0@x>", '"\u00a1\udcc3\udcbc" <ann@example.org>'), extra_cc=[])   # ¡ and 8-bit ü
@example(headers=("bytes", "x", "<@>", '"Ann" <ann@example.org>'), extra_cc=[])   # Python 3.11 raises IndexError
@example(headers=("bytes", "x", "<a,b@x>", '"Ann" <ann@example.org>'), extra_cc=[])   # ... and reads it "<a"
@given(headers=parent_headers(), extra_cc=CC)
def test_a_reply_to_any_mail_has_exactly_the_expected_headers(headers, extra_cc):
    """For any Subject, Message-ID and From of the parent (CR, LF, non-ASCII, long), reply() builds
    a reply, or refuses with ValueError as it says it may, though never when From is a plain
    address on one line (CR or LF in a parsed header is folding; Python's address parser gives
    up on a quoted name broken by a bare one). The reply, serialised and parsed again, has exactly
    the expected headers (nothing injected, none doubled, all 7-bit), a Subject starting "Re: "
    once, In-Reply-To the parent's id, References ending with it, and the parent's sender in To."""
    transport, subject, msgid_value, sender = headers
    msgid = MESSAGE_ID.search(msgid_value)[0]
    plain = None if re.search(r"[\r\n]", sender) else PLAIN_FROM.fullmatch(sender)
    with no_hang():
        try:
            built = reply(parent_mail(*headers), "bootbot: PASS\n", SENDER, [LIST, *extra_cc], REPORT_ID, date=DATE)
        except ValueError:
            assert not plain, "a mail with a Message-ID and a plain From address is answered"
            return
        raw = built.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"\r" not in head.replace(b"\r\n", b"") and b"\n" not in head.replace(b"\r\n", b"")
    again = email.message_from_bytes(raw, policy=email.policy.default)
    assert sorted(name.lower() for name in again.keys()) in (EXPECTED, sorted([*EXPECTED, "cc"]))
    assert re.match(r"Re:( |$)", again["Subject"]) and not REPLY_PREFIX.match(again["Subject"][3:])
    # The same words: Python 3.11 folds long non-ASCII subjects into encoded words moving a space.
    assert again["Subject"].split() == built["Subject"].split() or \
        "".join(again["Subject"].split()) == "".join(built["Subject"].split())
    assert again["In-Reply-To"] == msgid
    assert again["References"].split()[-1] == msgid
    if plain:
        assert [address.domain for address in again["To"].addresses] == [plain[3]]
    assert again["Message-ID"] == REPORT_ID and again.get_content().splitlines() == ["bootbot: PASS"]


@SOME
@given(key=st.text(max_size=200))
@example(key="series/20240701100000.2-jane@example.com v2\r\nBcc: x")
def test_a_message_id_from_any_key_is_a_dot_atom_id(key):
    """make_message_id of any key is a msg-id the reply code accepts: <bootbot-dot-atom@domain>,
    the same for the same key."""
    message_id = make_message_id(key, SENDER)
    assert MESSAGE_ID.fullmatch(message_id)
    assert re.fullmatch(r"<[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*@example\.org>", message_id)
    assert message_id == make_message_id(key, SENDER)
