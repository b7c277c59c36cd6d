"""The initramfs every boot runs: busybox and an /init that proves userspace was reached.

/init prints a marker carrying the run's nonce, which it reads from its environment (the kernel
command line's bootbot_nonce=), so that neither a stale log nor a kernel string can pass for a
boot that got there: the command line echoed on the console holds the nonce, not the marker."""
from __future__ import annotations

import stat
from pathlib import Path


def build(path: Path, busybox: Path, init: str) -> None:
    """Writes an uncompressed newc cpio (every kernel can read it) with /init, busybox and
    /dev/console, the last so init has a console even when the kernel has no devtmpfs."""
    archive = _Cpio()
    for directory in ("bin", "dev", "proc"):
        archive.add(directory, stat.S_IFDIR | 0o755)
    archive.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    archive.add("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes())
    archive.add("init", stat.S_IFREG | 0o755, init.encode())
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
