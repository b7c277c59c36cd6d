"""A mailed patch series, read with b4: newest revision, no cover letter, trailers collected."""
from __future__ import annotations

import copy
import email.message
import email.parser
import email.utils
import hashlib
import io
import logging
import re
from pathlib import Path

import b4
import unidiff

from bot.changes.change import Change, Patch

_INDEX = re.compile(r"index ([0-9a-f]{7,40})\.\.[0-9a-f]{7,40}")


class SeriesError(Exception):
    """Input that is not a patch series bootbot can check."""


# What Python's mail parser raises on odd mail, beyond its defects: the default policy parses some
# headers while it reads a message (3.11: IndexError on "Content-Type: text/plain; a*").
_UNREADABLE = (ValueError, LookupError, UnicodeError)


def configure_b4(archive_url: str) -> None:
    """b4 reads its settings from globals; bootbot's come from its own configuration, never
    from the git config of whatever directory it runs in."""
    b4.MAIN_CONFIG.clear()
    b4.MAIN_CONFIG.update(copy.deepcopy(b4.DEFAULT_CONFIG))
    b4.MAIN_CONFIG.update({"attestation-policy": "off", "midmask": f"{archive_url.rstrip('/')}/%s",
                           "linkmask": f"{archive_url.rstrip('/')}/%s"})
    b4.USER_CONFIG.clear()
    b4.LORENODE = None   # b4 keeps the archive client it made for the previous URL
    logging.getLogger("b4").setLevel(logging.CRITICAL)   # b4's own chatter is not our report


def read_mbox(path: Path) -> Change:
    b4.can_network = False
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SeriesError(f"cannot read {path}: {e.strerror}") from None
    if not data.strip():
        raise SeriesError(f"{path} is empty")
    if b"\0" in data or not (data.startswith(b"From ") or b"\nSubject:" in data[:65536]):
        raise SeriesError(f"{path} is not an mbox of patches")
    try:
        messages = b4.get_msgs_from_mailbox_or_maildir(str(path))
    except _UNREADABLE as e:
        raise SeriesError(f"{path}: unreadable message: {e}") from None
    return from_messages(messages, str(path))


def fetch(msgid: str) -> Change:
    """The thread of a Message-ID (or an archive link) from the configured archive."""
    b4.can_network = True
    msgid = b4.parse_msgid(msgid)
    messages = b4.get_pi_thread_by_msgid(msgid, nocache=True)
    if not messages:
        raise SeriesError(f"the archive has no thread for <{msgid}>")
    return from_messages(messages, f"<{msgid}>")


def parse_message(raw: bytes) -> email.message.EmailMessage:
    """A message as b4 reads it; SeriesError when Python's parser cannot read it."""
    try:
        return email.parser.BytesParser(policy=b4.emlpolicy, _class=email.message.EmailMessage).parsebytes(raw)
    except _UNREADABLE as e:
        raise SeriesError(f"unreadable message: {e}") from None


def from_messages(messages: list, source: str, revision: int | None = None) -> Change:
    """The series in `messages` (a thread, an mbox): `revision`, or the newest one."""
    box = b4.LoreMailbox()
    for number, message in enumerate(messages):
        try:   # reading a header can raise too: the default policy parses it when it is read
            if not message.get("Message-ID"):   # plain `git format-patch` output has none
                digest = hashlib.sha256(message.as_bytes()).hexdigest()[:16]
                del message["Message-ID"]   # an empty one, which would make a second
                message["Message-ID"] = f"<local-{number}-{digest}@bootbot>"
            box.add_message(message)
        except _UNREADABLE as e:
            raise SeriesError(f"{source}: unreadable message {number + 1}: {e}") from None
    try:   # b4 reads the messages' headers and bodies again, and raises as the loop above does
        return _series(box, source, revision)
    except _UNREADABLE as e:
        raise SeriesError(f"{source}: unreadable series: {e}") from None


def _series(box, source: str, revision: int | None) -> Change:
    lseries = box.get_series(revision=revision, codereview_trailers=False)
    if lseries is None or not any(p is not None and p.has_diff for p in lseries.patches[1:]):
        raise SeriesError(f"{source} has no patch")
    missing = [n for n, p in enumerate(lseries.patches[1:], 1) if p is None]
    if missing:
        raise SeriesError(f"{source}: patch {missing[0]}/{lseries.expected} of v{lseries.revision} is missing")
    try:
        am_ready = lseries.get_am_ready(addlink=False)
    except SystemExit:   # b4's verdict on a patch with hidden Unicode controls: it logs why and exits
        raise SeriesError(f"{source}: b4 refuses a patch that holds suspicious Unicode control characters") from None
    cover = lseries.patches[0]
    return Change(
        subject=(cover or lseries.patches[1]).subject,
        version=lseries.revision,
        patches=tuple(Patch(n, lmsg.subject, lmsg.msgid, email.utils.formataddr((lmsg.fromname, lmsg.fromemail)),
                            *_diff(message))
                      for n, (lmsg, message) in enumerate(zip(lseries.patches[1:], am_ready, strict=True), 1)),
        base_commit=lseries.base_commit,
        cover_msgid=cover.msgid if cover else None,
        am_messages=tuple(map(_am_bytes, am_ready)),
        tags=tuple(t for t in (cover or lseries.patches[1]).lsubject.get_extra_prefixes() if t.upper() != "PATCH"),
    )


def _am_bytes(message) -> bytes:
    mbox = io.BytesIO()
    b4.save_git_am_mbox([message], mbox)
    return mbox.getvalue()


def _diff(message) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The paths a patch touches, and the blob each changed file had before it (its `index` line)."""
    body = message.get_payload(decode=True).decode("utf-8", "replace")
    try:
        diff = unidiff.PatchSet(body)
    except unidiff.UnidiffParseError as e:
        raise SeriesError(f"patch '{message['Subject']}' has a malformed diff: {e}") from None
    files, blobs = set(), []
    for changed in diff:
        for name in (changed.source_file, changed.target_file):
            if name and name != "/dev/null":
                files.add(_path(name))
        index = next(filter(None, map(_INDEX.match, changed.patch_info or ())), None)
        if index and changed.source_file != "/dev/null" and set(index[1]) != {"0"}:
            blobs.append((_path(changed.source_file), index[1]))
    return tuple(sorted(files)), tuple(blobs)


def _path(name: str) -> str:
    return name.split("/", 1)[1] if name[:2] in ("a/", "b/") else name
