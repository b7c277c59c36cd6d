"""The boot lab: what of the host a boot uses ([lab] and [boot] in the configuration)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox import Sandbox


@dataclass(frozen=True)
class Lab:
    """The host's side of booting: QEMU and the host's files, the accelerator, how many boots
    at once, where derived files are kept, and QEMU's sandbox."""
    qemu: str
    host: Mapping[str, Path]   # files by name ([lab] in the configuration)
    accel: str                 # auto, kvm or tcg
    probe_seconds: float
    jobs: int
    cache: Path
    sandbox: Sandbox
