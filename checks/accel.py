"""Choosing the accelerator: KVM only when a probe boot shows that it works.

On some hosts /dev/kvm opens and even runs a real-mode guest, yet a kernel hangs right after
its 16-bit setup; so the probe boots the kernel under test until it prints its banner."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from checks import qemu
from checks.console import PASS, Console, Patterns
from checks.sandbox import Sandbox

KVM_DEVICE = Path("/dev/kvm")
BANNER = re.compile(r"Linux version \d")


def choose(setting: str, qemu_binary: str, bzimage: Path, cache: Path, probe_seconds: float,
           sandbox: Sandbox) -> str:
    """"kvm" or "tcg" for setting "kvm", "tcg" or "auto"; "auto" probes once per host boot."""
    if setting != "auto":
        return setting
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return "tcg"
    record = cache / "kvm-probe.json"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    try:
        known = json.loads(record.read_text())
        if known["boot_id"] == boot_id:
            return known["accel"]
    except (OSError, ValueError, KeyError):
        pass
    accel = "kvm" if kvm_boots(qemu_binary, bzimage, probe_seconds, sandbox) else "tcg"
    cache.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"boot_id": boot_id, "accel": accel}))
    return accel


def kvm_boots(qemu_binary: str, bzimage: Path, seconds: float, sandbox: Sandbox) -> bool:
    """Whether `bzimage` under KVM prints its banner within `seconds`."""
    command = [qemu_binary, "-accel", "kvm", "-cpu", "max", "-m", "256", "-nodefaults",
               "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", str(bzimage.resolve()),
               "-append", "console=ttyS0 earlyprintk=serial panic=-1"]
    with tempfile.TemporaryDirectory(prefix="bootbot-kvm-") as scratch:
        console = Console(BANNER, Patterns.load())
        verdict = qemu.run(command, Path(scratch), Path(scratch) / "console.log",
                           console, seconds, seconds, sandbox, [bzimage])
    return verdict.status == PASS
