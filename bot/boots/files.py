"""The files a boot needs: given outright, derived as checks/files.toml declares, or the host's;
derived files kept in a cache by the identity of their inputs, and staged into each run folder."""
from __future__ import annotations

import gzip
import hashlib
import os
import shlex
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bot.boots import initramfs, kernel_image
from bot.boots.kernel_image import BadImage
from bot.sandbox import Sandbox
from bot.words import LabError

_FIELDS = ("from", "step", "command")


@dataclass(frozen=True)
class Derivation:
    name: str                      # the file it makes
    inputs: tuple[str, ...]        # files by name, or an entry's values
    step: str | None               # a step of bootbot's (STEPS)
    command: tuple[str, ...] | None   # or an argument list run in the sandbox
    options: Mapping[str, Any]     # the rest of its table, for the step


def load(path: Path) -> dict[str, Derivation]:
    derivations = {}
    for name, table in tomllib.loads(path.read_text()).items():
        step, command = table.get("step"), table.get("command")
        if (step is None) == (command is None):
            raise LabError(f"{path}: [{name}] needs a step or a command, not both")
        if step is not None and step not in STEPS:
            raise LabError(f"{path}: [{name}]: no step {step!r}; bootbot has {', '.join(STEPS)}")
        derivations[name] = Derivation(name, tuple(table["from"]), step, command and tuple(command),
                                       MappingProxyType({k: v for k, v in table.items() if k not in _FIELDS}))
    return derivations


class Files:
    """Finds each file an entry boots by name: given (a build's artifacts, `bootbot boot`'s
    files), else derived, else the host's. Finding fails with LabError (the host lacks it) or
    BadImage (a given image cannot be read: the kernel's fault)."""

    def __init__(self, given: Mapping[str, Path], derivations: Mapping[str, Derivation],
                 host: Mapping[str, Path], cache: Path, sandbox: Sandbox, given_by: str = "given"):
        self.given, self.derivations, self.host = given, derivations, host
        self.given_by = given_by   # how `describe` says a given file came: given, built
        self.cache, self.sandbox = cache, sandbox
        self._found: dict[str, Path | Exception] = {}

    def prepare(self, names: Iterable[str], values: Iterable[str]) -> None:
        """Finds now, once, every file of `names` not made from an entry's `values`: before the
        boots run in parallel, each then only looks them up."""
        for name in names:
            if not self._per_run(name, set(values)):
                try:
                    self._shared(name)
                except (LabError, BadImage):   # kept: each entry that needs the file says so
                    pass

    def stage(self, names: list[str], writable: tuple[str, ...], strings: Mapping[str, str],
              folder: Path) -> list[Path]:
        """Puts each file into the run folder under its name: linked, or copied when QEMU writes
        to it. Returns the files outside the folder that the links lead to."""
        linked = []
        for name in names:
            path = self._find(name, strings, folder)
            target = folder / name
            if path == target:   # made per run, in the folder already
                continue
            if name in writable:
                (shutil.copytree if path.is_dir() else shutil.copyfile)(path, target)
            else:
                target.symlink_to(path.resolve())
                linked.append(path.resolve())
        return linked

    def describe(self, name: str, values: Iterable[str]) -> str:
        """Where a file comes from, in words, for a person who boots it again by hand."""
        if name in self.given:
            return f"{self.given_by}: {self.given[name].name}"
        derivation = self.derivations.get(name)
        if derivation is None:
            return f"the host's: {self.host.get(name, '(none)')}"
        made = "per run" if self._per_run(name, set(values)) else "cached"
        how = shlex.join(derivation.command) if derivation.command else RECIPES[derivation.step or ""](derivation)
        return f"made {made} from {', '.join(derivation.inputs)} (checks/files.toml [{name}]): {how}"

    def _find(self, name: str, strings: Mapping[str, str], folder: Path) -> Path:
        if self._per_run(name, set(strings)):
            derivation = self.derivations[name]
            inputs = {i: strings[i] if i in strings else self._find(i, strings, folder) for i in derivation.inputs}
            self._make(derivation, inputs, folder / name)
            return folder / name
        return self._shared(name)

    def _per_run(self, name: str, values: set[str]) -> bool:
        derivation = None if name in self.given else self.derivations.get(name)
        return derivation is not None and any(i in values or self._per_run(i, values) for i in derivation.inputs)

    def _shared(self, name: str) -> Path:
        if name not in self._found:
            try:
                self._found[name] = self._locate(name)
            except (LabError, BadImage) as e:   # kept, and raised for each entry that needs the file
                self._found[name] = e
        found = self._found[name]
        if isinstance(found, Exception):
            raise found
        return found

    def _locate(self, name: str) -> Path:
        if name in self.given:
            return _readable(name, self.given[name])
        derivation = self.derivations.get(name)
        if derivation is None:
            if name not in self.host:
                raise LabError(f"no {name}: neither given, derived nor the host's ([lab] {name})")
            return _readable(name, self.host[name])
        inputs = {i: self._shared(i) for i in derivation.inputs}
        target = self.cache / f"{name}-{_identity(derivation, inputs)}"
        if not target.exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache, prefix=f".{name}-") as scratch:
                made = Path(scratch) / name
                self._make(derivation, inputs, made)
                made.rename(target)   # whole or not at all under the real name
        return target

    def _make(self, derivation: Derivation, inputs: Mapping[str, Path | str], output: Path) -> None:
        if derivation.command is None:   # one of bootbot's steps
            STEPS[derivation.step or ""](dict(inputs), output, derivation.options)
            return
        # files by the path they resolve to: the sandbox shows that one, not the links to it
        values = {name: str(value.resolve() if isinstance(value, Path) else value) for name, value in inputs.items()}
        argv = [arg.format(output=output, **values) for arg in derivation.command]
        log = output.with_name(f"{output.name}.log")
        output.parent.mkdir(parents=True, exist_ok=True)
        finished = self.sandbox.run(argv, cwd=output.parent, log=log, writable=[output.parent],
                                    readable=[v for v in inputs.values() if isinstance(v, Path)])
        if not finished.ok:
            said = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise LabError(f"making {derivation.name} failed: {' / '.join(said) or finished.limit or 'no output'}")


def _readable(name: str, path: Path) -> Path:
    if not path.exists():
        raise LabError(f"{name} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise LabError(f"{name} {path}: not readable")
    return path


def _identity(derivation: Derivation, inputs: Mapping[str, Path | str]) -> str:
    """What a derived file depends on: its declaration and each input, a file known like make
    knows its targets (path, inode, size, mtime), so no megabytes are read to find it again."""
    parts = [repr((derivation.step, derivation.command, sorted(derivation.options.items())))]
    for name, value in sorted(inputs.items()):
        if isinstance(value, Path):
            stat = value.stat()
            value = f"{value.resolve()}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
        parts.append(f"{name}={value}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _vmlinux(inputs, output: Path, options) -> None:
    [bzimage] = inputs.values()
    output.write_bytes(kernel_image.extract_vmlinux(bzimage.read_bytes()))


def _gunzip(inputs, output: Path, options) -> None:
    [source] = inputs.values()
    data = source.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise LabError(f"cannot decompress {source}: {e}") from None
    output.write_bytes(data)


def _initramfs(inputs, output: Path, options) -> None:
    """`init` and the inputs, each where `place` puts it in the archive (busybox: bin/busybox)."""
    place = {"busybox": "bin/busybox", **options.get("place", {})}
    try:
        initramfs.build(output, options["init"], {place[name]: path for name, path in inputs.items()})
    except OSError as e:
        raise LabError(f"cannot make the initramfs: {e.filename}: {e.strerror}") from None


def _text(inputs, output: Path, options) -> None:
    """`text` with {name} of each input filled in; other braces stay (GRUB's configuration has them)."""
    text = options["text"]
    for name, value in inputs.items():
        text = text.replace("{" + name + "}", str(value))
    output.write_text(text)


STEPS: dict[str, Callable[[dict, Path, Mapping], None]] = {
    "vmlinux-from-bzimage": _vmlinux, "gunzip": _gunzip, "initramfs": _initramfs, "text": _text}


def _initramfs_recipe(derivation: Derivation) -> str:
    place = {"busybox": "bin/busybox", **derivation.options.get("place", {})}
    placed = ", ".join(f"{name} as /{place[name].strip('/')}" for name in derivation.inputs)
    init = "; ".join(line for line in derivation.options["init"].splitlines() if not line.startswith("#!"))
    return f"a newc cpio with {placed} and an /init (#!/bin/busybox sh) that runs: {init}"


# Each step in words a reader can follow by hand, for the reproduce section of a report.
RECIPES: dict[str, Callable[[Derivation], str]] = {
    "vmlinux-from-bzimage": lambda d: "the ELF inside the bzImage (the kernel's scripts/extract-vmlinux)",
    "gunzip": lambda d: "gunzip -c (a file not gzipped as it is)",
    "initramfs": _initramfs_recipe,
    "text": lambda d: "the text: " + " / ".join(d.options["text"].strip().splitlines()),
}
