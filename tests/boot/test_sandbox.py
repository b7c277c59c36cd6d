"""QEMU in the sandbox (bot/sandbox.py): the kernel under test runs there, and sees no host file."""
from __future__ import annotations

import re
from pathlib import Path

from conftest import PATTERNS

from bot import config as configuration
from bot.boots import qemu
from bot.boots.console import Console
from bot.sandbox import Sandbox

UID = configuration.load().get("sandbox", "uid") + 1


def test_qemu_opens_only_the_files_it_boots(tmp_path):
    """The kernel under test runs in QEMU: a QEMU it escapes into still sees no host file."""
    image = tmp_path / "not-a-kernel"
    image.write_text("the operator's secret\n")
    run = tmp_path / "run"

    def boot(readable: list[Path]):
        run.mkdir()
        command = ["qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-display", "none",
                   "-serial", "stdio", "-kernel", str(image)]
        decision = qemu.run(command, run, run / "console.log", Console(re.compile("never"), PATTERNS),
                            30, 30, Sandbox(UID - 1), readable)
        run.rename(tmp_path / f"run-{len(readable)}")
        return decision

    assert "could not open kernel file" in boot([]).reason
    assert boot([image]).reason == "QEMU refused the kernel image: qemu: invalid kernel header"
