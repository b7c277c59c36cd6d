"""Choosing the accelerator: KVM only when a probe boot shows that it works.

On some hosts /dev/kvm opens and even runs a real-mode guest, yet a kernel hangs right after
its 16-bit setup; so the probe boots what the tree built (its [probe] declaration) until it
prints its banner. What it boots may be a series' broken build: a probe that fails under KVM
counts only when the same boot under TCG prints the banner."""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.boots import qemu
from bot.boots.console import Console, Patterns
from bot.boots.entry import QemuArgs, placeholders
from bot.boots.files import Files
from bot.boots.kernel_image import BadImage
from bot.sandbox import Sandbox
from bot.words import PASS, LabError

KVM_DEVICE = Path("/dev/kvm")
TCG_SLOWER = 4   # the probe's limit under TCG, in KVM's: a loaded host must not make a working build look broken


@dataclass(frozen=True)
class Probe:
    """A short boot of what a tree builds, that prints `banner` when the accelerator works."""
    tree: str
    qemu: tuple[str, ...]   # QEMU's arguments; {accel}, and {name} for a file, as in the entries
    banner: str


def choose(setting: str, probe: Probe | None, files: Files, qemu_binary: str, cache: Path,
           seconds: float, sandbox: Sandbox, patterns: Patterns) -> str:
    """"kvm" or "tcg" for setting "kvm", "tcg" or "auto"; "auto" probes once per host boot. KVM asked
    for is probed too, and is used or fails the run (LabError): a hanging KVM would look like
    kernels that hang. A probe that boots under neither proves nothing: the setting stands."""
    if setting == "tcg":
        return setting
    usable = os.access(KVM_DEVICE, os.R_OK | os.W_OK)
    if probe is None:   # nothing to prove KVM with: it is used only when asked for
        works = usable and setting == "kvm"
    else:   # unknown (None): the probe's files boot under nothing, and KVM is used only when asked for
        probed = usable and _probed(probe, files, qemu_binary, cache, seconds, sandbox, patterns)
        works = setting == "kvm" if probed is None else probed
    if setting == "kvm" and not works:
        why = "a kernel does not boot under it here (the probe)" if usable else f"{KVM_DEVICE} is not usable"
        raise LabError(f"KVM was asked for, but {why}: use accel tcg or auto")
    return "kvm" if works else "tcg"


def _probed(probe: Probe, files: Files, qemu_binary: str, cache: Path, seconds: float, sandbox: Sandbox,
            patterns: Patterns) -> bool | None:
    """Whether the probe boots under KVM: once per host boot, remembered in `cache`; None when
    it boots under TCG neither (a broken build proves nothing about KVM: not remembered)."""
    record = cache / f"kvm-probe-{probe.tree}.json"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    try:
        known = json.loads(record.read_text())
        if known["boot_id"] == boot_id:
            return known["accel"] == "kvm"
    except (OSError, ValueError, KeyError):
        pass
    if boots(probe, "kvm", files, qemu_binary, seconds, sandbox, patterns):
        accel = "kvm"
    elif boots(probe, "tcg", files, qemu_binary, TCG_SLOWER * seconds, sandbox, patterns):
        accel = "tcg"
    else:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"boot_id": boot_id, "accel": accel}))
    return accel == "kvm"


def boots(probe: Probe, accel: str, files: Files, qemu_binary: str, seconds: float, sandbox: Sandbox,
          patterns: Patterns) -> bool:
    """Whether the probe boot under `accel` prints its banner within `seconds`."""
    names = [name for name in placeholders(probe.qemu) if name != "accel"]
    with tempfile.TemporaryDirectory(prefix="bootbot-probe-") as scratch:
        folder = Path(scratch)
        try:
            readable = files.stage(names, (), {}, folder)
        except (LabError, BadImage):   # nothing to probe with
            return False
        args = QemuArgs()
        command = [qemu_binary, *(args.format(arg, accel=accel, **{n: n for n in names}) for arg in probe.qemu)]
        decision = qemu.run(command, folder, folder / "console.log", Console(re.compile(probe.banner), patterns),
                            seconds, seconds, sandbox, readable)
    return decision.status == PASS
