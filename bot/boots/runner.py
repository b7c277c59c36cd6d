"""Booting through a set of entries, in parallel, each judged on its own, each leaving a folder:
console.log, command (the QEMU command line, runnable from that folder), result.json."""
from __future__ import annotations

import json
import secrets
import shlex
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType

from bot.boots import accel, qemu
from bot.boots.accel import Probe
from bot.boots.console import Console, Decision, Patterns
from bot.boots.entry import Entry
from bot.boots.files import Files
from bot.boots.kernel_image import BadImage
from bot.boots.lab import Lab
from bot.boots.locate import Location, locate
from bot.boots.symbols import Symbols
from bot.folders import COMMAND, CONSOLE, RESULT
from bot.words import ERROR, FAIL, TIMEOUT, LabError

LOCATE_BYTES = 1 << 20   # of a failed boot's console, from its end, searched for a crash's address


@dataclass(frozen=True)
class BootResult:
    entry: str
    status: str
    seconds: float
    reason: str
    log: str            # the console, relative to the folder the caller reads results from
    experimental: bool
    accel: str          # the accelerator it ran with
    files: dict[str, str] = field(default_factory=dict)   # each file it booted: where it came from
    kind: str = ""                                        # of failure (checks/console.toml)
    block: list[str] = field(default_factory=list)        # the failure's report, from its first line
    location: dict = field(default_factory=dict)          # where it died, when the console did not say (Location)

    def progress_line(self) -> str:
        return f"  {self.entry}: {self.status} after {self.seconds:g} s"


Progress = Callable[[str, BootResult | None], None]   # (entry, None) on start, result when done


Limits = Mapping[str, tuple[float, float]]   # by entry: its overall and silence limits, when not its own
OWN_LIMITS: Limits = MappingProxyType({})      # every entry its own


def boot(entries: list[Entry], files: Files, lab: Lab, folder: Path, *, patterns: Patterns,
         probe: Probe | None, symbols: Symbols = Symbols({}), root: Path | None = None, append: str = "",
         silence: float | None = None, attempt: int = 1, limits: Limits = OWN_LIMITS,
         progress: Progress = lambda entry, result: None) -> list[BootResult]:
    """Boots through every entry, each in `folder`/<entry> (<entry>.<attempt> from the second
    attempt on); results name logs relative to `root`. A boot that fails is located in `symbols`;
    a retry runs with QEMU's exception log, which costs a passing boot nothing then (bench/)."""
    folder.mkdir(parents=True, exist_ok=True)
    chosen = accel.choose(lab.accel, probe, files, lab.qemu, lab.cache, lab.probe_seconds, lab.sandbox, patterns)
    files.prepare([name for entry in entries for name in entry.files], {v for entry in entries for v in entry.values})
    run = {"accel": chosen, "nonce": secrets.token_hex(8), "append": append}
    where = Where(patterns, symbols, exceptions=attempt > 1)

    def one(entry: Entry) -> BootResult:
        progress(entry.name, None)
        timeout, quiet = limits.get(entry.name, (entry.timeout, silence or entry.silence))
        name = entry.name if attempt == 1 else f"{entry.name}.{attempt}"
        result = _boot_entry(entry, files, lab, run, folder / name, root or folder, where, timeout, quiet)
        progress(entry.name, result)
        return result

    longest_first = sorted(entries, key=lambda e: -e.typical_seconds)
    with ThreadPoolExecutor(max_workers=lab.jobs) as pool:
        done = {result.entry: result for result in pool.map(one, longest_first)}
    return [done[e.name] for e in entries]


@dataclass(frozen=True)
class Where:
    """How a failed boot is located."""
    patterns: Patterns
    symbols: Symbols
    exceptions: bool   # QEMU logs the guest's exceptions


def _boot_entry(entry: Entry, files: Files, lab: Lab, run: dict[str, str], directory: Path, root: Path,
                where: Where, timeout: float, silence: float) -> BootResult:
    directory.mkdir()
    log = directory / CONSOLE
    started = time.monotonic()
    try:
        readable = files.stage(entry.files, entry.writable, entry.strings(run), directory)
    except LabError as e:
        decision = Decision(ERROR, str(e))
    except BadImage as e:
        decision = Decision(FAIL, str(e))
    else:
        command = [lab.qemu, *entry.qemu_args(run)]
        (directory / COMMAND).write_text(shlex.join(command) + "\n")
        decision = qemu.run(command, directory, log, Console(entry.success_pattern(run["nonce"]), where.patterns),
                            timeout, silence, lab.sandbox, readable, where.exceptions)
    location = _locate(directory, log, where, decision) if decision.status in (FAIL, TIMEOUT) else None
    result = BootResult(entry.name, decision.status, round(time.monotonic() - started, 1), decision.reason,
                        str(log.relative_to(root)), entry.experimental, run["accel"],
                        {name: files.describe(name, entry.values) for name in entry.files},
                        decision.kind, list(decision.block), asdict(location) if location else {})
    (directory / RESULT).write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result


def _locate(directory: Path, log: Path, where: Where, decision: Decision) -> Location | None:
    """Where it died, when its console gave no failure's report of its own (a kernel's panic
    says where; the registers at the reset that follows would name the reboot code)."""
    try:
        with log.open("rb") as f:   # a crash report is at the end of a console
            f.seek(max(0, log.stat().st_size - LOCATE_BYTES))
            console = f.read().decode("utf-8", "replace")
    except OSError:
        console = ""
    unexplained = decision.status == TIMEOUT or decision.kind in ("reset", "poweroff")
    return locate(directory, console, where.patterns.addresses, where.symbols, registers=unexplained)
