"""The unit tier's guard (tests/unit/conftest.py): what would make a unit test slow or need a
machine set up fails it, here and in the processes it starts."""
from __future__ import annotations

import subprocess
import sys

import pytest

from unit.tier.sitecustomize import Refused


def test_a_unit_test_starts_no_qemu_and_no_server_program():
    with pytest.raises(Refused, match="qemu-system-x86_64"):
        subprocess.run(["qemu-system-x86_64", "-version"], capture_output=True)
    with pytest.raises(Refused, match="qemu-system-x86_64"):   # nor through the sandbox
        subprocess.run(["bwrap", "--", "qemu-system-x86_64", "-version"], capture_output=True)
    with pytest.raises(Refused, match="git daemon"):
        subprocess.run(["git", "daemon", "--help"], capture_output=True)


def test_nor_does_a_process_it_starts():
    started = subprocess.run([sys.executable, "-c", "import subprocess; subprocess.run(['redis-server', '--version'])"],
                             capture_output=True, text=True)
    assert started.returncode != 0 and "Refused: a unit test starts no server and no QEMU" in started.stderr
