"""The bare floor the benchmarks measure bootbot against: the same QEMU command lines, run by hand
on files staged once, without bootbot's Python, sandbox or console watching."""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from bot import settings as settings_module
from bot.boots.entry import Entry

NONCE = "0123456789abcdef"   # fixed: the floor's files are staged once for every run


def stage(entries: list[Entry], given: dict[str, Path], config, folder: Path) -> None:
    """Each entry's files in folder/<entry>/ under their names, made with bootbot's own
    declarations (derived files cached in folder/cache, as bootbot caches them)."""
    from bot import declarations
    declared = declarations.load(config.path("checks", "dir"))
    lab = settings_module.lab(config, "tcg")
    files = settings_module.files(given, declared, lab, settings_module.sandbox_limits(config), cache=folder / "cache")
    for entry in entries:
        directory = folder / entry.name
        shutil.rmtree(directory, ignore_errors=True)   # staged again after each build
        directory.mkdir(parents=True)
        files.stage(entry.files, entry.writable, entry.strings(run_values()), directory)


def run_values(accel: str = "tcg") -> dict[str, str]:
    return {"accel": accel, "nonce": NONCE, "append": ""}


def command(entry: Entry, config, accel: str = "tcg") -> list[str]:
    return [config.get("lab", "qemu"), *entry.qemu_args(run_values(accel))]


def fresh_writable(entry: Entry, directory: Path, config) -> None:
    """QEMU writes to these (OVMF's variables, the host's): every boot starts from a fresh copy."""
    for name in entry.writable:
        shutil.copyfile(config.path("lab", name), directory / name)


def watch(argv: list[str], cwd: Path, success: re.Pattern, timeout: float) -> bool:
    """Runs QEMU until `success` shows on its console, then kills it, as one would by hand."""
    with (cwd / "console.log").open("wb") as log, subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as qemu:
        timer = threading.Timer(timeout, qemu.kill)
        timer.start()
        try:
            for line in qemu.stdout:
                log.write(line)
                if success.search(line.decode("utf-8", "replace")):
                    return True
            return False
        finally:
            timer.cancel()
            qemu.kill()


def until_exit(argv: list[str], cwd: Path, timeout: float) -> float:
    """Seconds from starting QEMU until it exits by itself (the guest powers off)."""
    with (cwd / "console.log").open("wb") as out:
        started = time.monotonic()
        subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        return time.monotonic() - started
