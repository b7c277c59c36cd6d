"""The accelerator choice: KVM only when a real kernel boots under it."""
import json
from pathlib import Path

from bot import config
from checks import accel
from checks.sandbox import Sandbox

SANDBOX = Sandbox(config.load().get("sandbox", "uid"))
BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_explicit_settings_are_obeyed_without_probing(tmp_path, kernel):
    assert accel.choose("tcg", "qemu-system-x86_64", kernel, tmp_path, 5, SANDBOX) == "tcg"
    assert accel.choose("kvm", "qemu-system-x86_64", kernel, tmp_path, 5, SANDBOX) == "kvm"
    assert not (tmp_path / "kvm-probe.json").exists()


def test_no_kvm_device_means_tcg(tmp_path, kernel, monkeypatch):
    monkeypatch.setattr(accel, "KVM_DEVICE", tmp_path / "kvm")
    assert accel.choose("auto", "qemu-system-x86_64", kernel, tmp_path, 5, SANDBOX) == "tcg"


def test_the_probe_is_remembered_for_this_host_boot_only(tmp_path, kernel, monkeypatch):
    monkeypatch.setattr(accel, "KVM_DEVICE", tmp_path / "kvm")   # present, whatever the host has
    (tmp_path / "kvm").touch()
    record = tmp_path / "kvm-probe.json"
    record.write_text(json.dumps({"boot_id": BOOT_ID, "accel": "kvm"}))
    assert accel.choose("auto", "qemu-system-x86_64", kernel, tmp_path, 5, SANDBOX) == "kvm"
    record.write_text(json.dumps({"boot_id": "another boot", "accel": "kvm"}))
    probed = accel.choose("auto", "qemu-system-x86_64", kernel, tmp_path, 5, SANDBOX)
    assert json.loads(record.read_text()) == {"boot_id": BOOT_ID, "accel": probed}


def test_the_probe_agrees_with_a_real_kvm_boot(bootbot, kernel):
    works = accel.kvm_boots("qemu-system-x86_64", kernel, 10, SANDBOX)
    run = bootbot("boot", "--bzimage", str(kernel), "--entries", "bios", "--accel", "kvm", "--silence", "15")
    assert works == (run.status("bios") == "pass"), run.json
