"""The accelerator choice: KVM only when a real kernel boots under it (the tree's probe)."""
import json
from pathlib import Path

import pytest

from bot import config
from bot.boots import accel
from bot.boots.files import Files
from bot.sandbox import Sandbox
from conftest import DECLARED, LINUX, PATTERNS

SANDBOX = Sandbox(config.load().get("sandbox", "uid"))
BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@pytest.fixture
def choose(tmp_path, kernel):
    files = Files({"bzimage": kernel}, DECLARED.derivations, {}, tmp_path / "cache", SANDBOX)

    def choose(setting: str) -> str:
        return accel.choose(setting, LINUX.probe, files, "qemu-system-x86_64", tmp_path, 5, SANDBOX, PATTERNS)
    return choose


def test_explicit_settings_are_obeyed_without_probing(tmp_path, choose):
    assert choose("tcg") == "tcg"
    assert choose("kvm") == "kvm"
    assert not list(tmp_path.glob("kvm-probe*"))


def test_no_kvm_device_means_tcg(tmp_path, choose, monkeypatch):
    monkeypatch.setattr(accel, "KVM_DEVICE", tmp_path / "kvm")
    assert choose("auto") == "tcg"


def test_the_probe_is_remembered_for_this_host_boot_only(tmp_path, choose, monkeypatch):
    monkeypatch.setattr(accel, "KVM_DEVICE", tmp_path / "kvm")   # present, whatever the host has
    (tmp_path / "kvm").touch()
    record = tmp_path / "kvm-probe-linux.json"
    record.write_text(json.dumps({"boot_id": BOOT_ID, "accel": "kvm"}))
    assert choose("auto") == "kvm"
    record.write_text(json.dumps({"boot_id": "another boot", "accel": "kvm"}))
    probed = choose("auto")
    assert json.loads(record.read_text()) == {"boot_id": BOOT_ID, "accel": probed}


def test_the_probe_agrees_with_a_real_kvm_boot(bootbot, kernel, tmp_path):
    files = Files({"bzimage": kernel}, DECLARED.derivations, {}, tmp_path, SANDBOX)
    works = accel.kvm_boots(LINUX.probe, files, "qemu-system-x86_64", 10, SANDBOX, PATTERNS)
    run = bootbot("boot", "--bzimage", str(kernel), "--entries", "bios", "--accel", "kvm", "--silence", "15")
    assert works == (run.status("bios") == "pass"), run.json
