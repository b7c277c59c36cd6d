"""Booting a kernel through a set of entries, in parallel, each judged on its own."""
from __future__ import annotations

import json
import re
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from checks import accel, initramfs, qemu
from checks.artifacts import Artifacts, Unavailable
from checks.console import ERROR, FAIL, PASS, Console, Patterns, Verdict
from checks.entry import Entry
from checks.kernel_image import BadImage
from checks.sandbox import Sandbox


@dataclass(frozen=True)
class Lab:
    """What the host provides and how hard to try."""
    qemu: str
    busybox: Path
    accel: str             # auto, kvm or tcg
    probe_seconds: float
    jobs: int
    state: Path
    sandbox: Sandbox       # QEMU's confinement


@dataclass(frozen=True)
class BootResult:
    entry: str
    status: str
    seconds: float
    reason: str
    log: str
    experimental: bool
    accel: str

    def progress_line(self) -> str:
        return f"  {self.entry}: {self.status} after {self.seconds:g} s"


Progress = Callable[[str, BootResult | None], None]   # (entry, None) on start, result when done


def boot(entries: list[Entry], given: dict[str, Path | None], lab: Lab, *, append: str = "",
         silence: float | None = None, progress: Progress = lambda entry, result: None) -> list[BootResult]:
    """Boots through every entry; `given` maps placeholder names (bzimage, vmlinux, xen,
    ovmf_code ...) to files. Console logs and commands stay under the run's folder in state/."""
    nonce = initramfs.new_nonce()
    run_dir = lab.state / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{nonce[:6]}"
    run_dir.mkdir(parents=True)
    artifacts = Artifacts({**given, "initrd": _initrd(run_dir, lab.busybox, nonce)}, lab.state / "cache")
    artifacts.resolve([name for entry in entries for name in entry.files])
    bzimage = artifacts.found.get("bzimage")
    chosen = accel.choose(lab.accel, lab.qemu, bzimage, lab.state / "cache", lab.probe_seconds, lab.sandbox) \
        if isinstance(bzimage, Path) else "tcg"
    patterns = Patterns.load()

    def one(entry: Entry) -> BootResult:
        progress(entry.name, None)
        success = re.compile(entry.milestone) if entry.milestone else initramfs.marker_pattern(nonce)
        result = _boot_entry(entry, artifacts, lab, chosen, run_dir / entry.name,
                             Console(success, patterns), append, silence)
        progress(entry.name, result)
        return result

    longest_first = sorted(entries, key=lambda e: -e.typical_seconds)
    with ThreadPoolExecutor(max_workers=lab.jobs) as pool:
        done = dict(zip(longest_first, pool.map(one, longest_first)))
    return [done[e] for e in entries]


def _initrd(run_dir: Path, busybox: Path, nonce: str) -> Path | Unavailable:
    path = run_dir / "initrd.cpio"
    try:
        initramfs.build(path, busybox, nonce)
    except OSError as e:   # each entry needing it reports the lab error
        return Unavailable(f"cannot make the initramfs: busybox {busybox}: {e.strerror}")
    return path


def _boot_entry(entry: Entry, artifacts: Artifacts, lab: Lab, accel_name: str,
                directory: Path, console: Console, append: str, silence: float | None) -> BootResult:
    directory.mkdir()
    log = directory / "console.log"
    started = time.monotonic()
    try:
        artifacts.stage(entry.files, entry.writable, directory)
    except Unavailable as e:
        verdict = Verdict(ERROR, str(e))
    except BadImage as e:
        verdict = Verdict(FAIL, str(e))
    else:
        command = [lab.qemu, *entry.qemu_args(accel_name, " ".join(filter(None, [entry.cmdline, append])))]
        (directory / "command").write_text(f"cd {shlex.quote(str(directory))} && {shlex.join(command)}\n")
        verdict = qemu.run(command, directory, log, console, entry.timeout, silence or entry.silence,
                           lab.sandbox, [artifacts.found[name] for name in entry.files])
    result = BootResult(entry.name, verdict.status, round(time.monotonic() - started, 1),
                        verdict.reason, str(log), entry.experimental, accel_name)
    (directory / "result.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result


def counts_as_failure(result, strict_experimental: bool) -> bool:
    """Whether a result (anything with status and experimental) fails the verdict:
    experimental entries only when asked."""
    return result.status != PASS and (strict_experimental or not result.experimental)
