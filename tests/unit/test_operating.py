"""What an operator runs: the systemd unit as shipped, and the version."""
from __future__ import annotations

import subprocess

from harness import ROOT, cli


def test_the_systemd_unit_verifies(tmp_path):
    """As installed from this checkout (the unit names /opt/bootbot, the Dockerfile's place)."""
    unit = tmp_path / "bootbot.service"
    unit.write_text((ROOT / "config" / "bootbot.service").read_text().replace("/opt/bootbot", str(ROOT)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120)
    said = [line for line in done.stderr.splitlines() if "bootbot.service" in line]
    assert done.returncode == 0 and not said, done.stderr
    text = unit.read_text()
    assert "KillMode=control-group" in text and "Restart=on-failure" in text and f"{ROOT}/.venv/bin/bootbot" in text


def test_version():
    done = cli("--version", timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("bootbot 0.")
