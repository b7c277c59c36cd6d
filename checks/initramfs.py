"""The initramfs every boot runs: busybox and an /init that proves userspace was reached.

The marker carries a nonce made for each run, so that neither a stale log nor a kernel
string (the command line is echoed on the console) can pass for a boot that got there."""
from __future__ import annotations

import re
import secrets
import stat
from pathlib import Path

INIT = """#!/bin/busybox sh
/bin/busybox echo "{marker}"
/bin/busybox poweroff -f
"""


def new_nonce() -> str:
    return secrets.token_hex(8)


def marker(nonce: str) -> str:
    return f"bootbot: userspace reached, nonce {nonce}"


def marker_pattern(nonce: str) -> re.Pattern:
    return re.compile(re.escape(marker(nonce)))


def build(path: Path, busybox: Path, nonce: str) -> None:
    """Writes an uncompressed newc cpio (every kernel can read it) with /init, busybox and
    /dev/console, the last so init has a console even when the kernel has no devtmpfs."""
    archive = _Cpio()
    for directory in ("bin", "dev", "proc"):
        archive.add(directory, stat.S_IFDIR | 0o755)
    archive.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    archive.add("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes())
    archive.add("init", stat.S_IFREG | 0o755, INIT.format(marker=marker(nonce)).encode())
    path.write_bytes(archive.finish())


class _Cpio:
    """The newc format of the kernel's Documentation/driver-api/early-userspace/buffer-format.rst."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.inode = 0

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self.inode += 1
        encoded = name.encode() + b"\0"
        fields = (self.inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.parts += [header, encoded, _pad(len(header) + len(encoded)), data, _pad(len(data))]

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return b"".join(self.parts)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)
