"""The files a boot needs: found and checked once per run, derived and cached, staged per entry."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

from checks import kernel_image
from checks.kernel_image import BadImage


class Unavailable(Exception):
    """A file the lab should provide is missing or unreadable: a lab error, never the kernel's."""


class Artifacts:
    """Maps each placeholder name of entries.toml to a file, deriving what was not given:
    vmlinux from the bzImage's payload, a plain Xen from its gzip."""

    def __init__(self, given: dict[str, Path | Unavailable | None], cache: Path):
        self.given = given
        self.cache = cache
        self.found: dict[str, Path | Exception] = {}

    def resolve(self, names: list[str]) -> None:
        """Finds every named file now, before boots run in parallel; a failure is kept per name."""
        for name in names:
            if name not in self.found:
                try:
                    self.found[name] = self._find(name)
                except (Unavailable, BadImage) as e:
                    self.found[name] = e

    def stage(self, names: list[str], writable: tuple[str, ...], directory: Path) -> None:
        """Puts each file into `directory` under its placeholder name; raises the first failure."""
        for name in names:
            found = self.found[name]
            if isinstance(found, Exception):
                raise found
            target = directory / name
            if name in writable:
                shutil.copyfile(found, target)
            else:
                target.symlink_to(found.resolve())

    def _find(self, name: str) -> Path:
        if name == "vmlinux" and not self.given.get("vmlinux"):
            return self._derived("vmlinux", self._find("bzimage"), kernel_image.extract_vmlinux)
        path = self.given.get(name)
        if path is None:
            raise Unavailable(f"no {name} given")
        if isinstance(path, Unavailable):
            raise path
        _check_readable(name, path)
        with path.open("rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        if gzipped:   # Debian ships Xen as xen-*.gz, which QEMU cannot load
            return self._derived(name, path, _gunzip)
        return path

    def _derived(self, name: str, source: Path, derive) -> Path:
        # Keyed like make keys its targets, by the source's identity and mtime, so a warm run
        # does not read and hash megabytes to find what it derived before.
        stat = source.stat()
        identity = f"{source.resolve()}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
        target = self.cache / f"{name}-{hashlib.sha256(identity.encode()).hexdigest()[:20]}"
        if not target.exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(derive(source.read_bytes()))
            partial.rename(target)   # atomic: a crash never leaves half a file under the real name
        return target


def _check_readable(name: str, path: Path) -> None:
    if not path.is_file():
        raise Unavailable(f"{name} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise Unavailable(f"{name} {path}: not readable")


def _gunzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise Unavailable(f"cannot decompress: {e}") from None
