"""The initramfs every boot runs: busybox and an /init that proves userspace was reached (and
anything else a boot needs in it: the nested PVH boot's dom0 carries Xen's tools).

/init prints a marker carrying the run's nonce, which it reads from its environment (the kernel
command line's bootbot_nonce=), so that neither a stale log nor a kernel string can pass for a
boot that got there: the command line echoed on the console holds the nonce, not the marker."""
from __future__ import annotations

import stat
from pathlib import Path


def build(path: Path, init: str, files: dict[str, Path]) -> None:
    """Writes an uncompressed newc cpio (every kernel can read it) with /init, /dev/console (so
    init has a console even when the kernel has no devtmpfs) and `files`: by their path in the
    archive, each a file, or a folder taken whole (busybox as "bin/busybox")."""
    archive = _Cpio()
    for directory in ("bin", "dev", "proc", "sys", "run", "tmp"):
        archive.add(directory, stat.S_IFDIR | 0o755)
    archive.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    made = {"bin", "dev", "proc", "sys", "run", "tmp"}
    for name, source in files.items():
        for inside, host in _walk(name.strip("/"), source):
            for parent in reversed(Path(inside).parents[:-1]):   # the kernel makes no missing folder
                if str(parent) not in made:
                    archive.add(str(parent), stat.S_IFDIR | 0o755)
                    made.add(str(parent))
            if inside not in made:
                archive.add(inside, _mode(host), b"" if host.is_dir() else host.read_bytes())
                made.add(inside)
    archive.add("init", stat.S_IFREG | 0o755, init.encode())
    path.write_bytes(archive.finish())


def _walk(inside: str, host: Path):
    """(path in the archive, host path) of `host` and, for a folder, all below it, parents first."""
    if inside:
        yield inside, host
    if host.is_dir():
        for child in sorted(host.iterdir()):
            yield from _walk(f"{inside}/{child.name}".lstrip("/"), child)


def _mode(host: Path) -> int:
    if host.is_dir():
        return stat.S_IFDIR | 0o755
    return stat.S_IFREG | (0o755 if host.stat().st_mode & 0o111 else 0o644)


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
