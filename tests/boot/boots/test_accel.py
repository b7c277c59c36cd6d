"""The accelerator choice: KVM only when a real kernel boots under it (the tree's probe)."""
import json
from pathlib import Path

import pytest
from conftest import DECLARED, LINUX, PATTERNS

from bot import config
from bot.boots import accel
from bot.boots.files import Files
from bot.sandbox import Sandbox
from bot.words import LabError

SANDBOX = Sandbox(config.load().get("sandbox", "uid"))
BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@pytest.fixture
def choose(tmp_path, kernel):
    files = Files({"bzimage": kernel}, DECLARED.derivations, {}, tmp_path / "cache", SANDBOX)

    def choose(setting: str) -> str:
        return accel.choose(setting, LINUX.probe, files, "qemu-system-x86_64", tmp_path, 5, SANDBOX, PATTERNS)
    return choose


def test_tcg_asked_for_is_used_without_probing(tmp_path, choose):
    assert choose("tcg") == "tcg"
    assert not list(tmp_path.glob("kvm-probe*"))


def test_kvm_asked_for_is_used_when_it_works_else_the_run_fails_saying_so(tmp_path, choose, monkeypatch):
    monkeypatch.setattr(accel, "KVM_DEVICE", tmp_path / "kvm")
    with pytest.raises(LabError, match="KVM was asked for, but .*kvm is not usable"):
        choose("kvm")
    (tmp_path / "kvm").touch()
    record = tmp_path / "kvm-probe-linux.json"
    record.write_text(json.dumps({"boot_id": BOOT_ID, "accel": "kvm"}))
    assert choose("kvm") == "kvm"
    record.write_text(json.dumps({"boot_id": BOOT_ID, "accel": "tcg"}))
    with pytest.raises(LabError, match="a kernel does not boot under it here"):
        choose("kvm")


def test_a_tree_without_a_probe_boots_under_tcg_unless_kvm_is_asked_for(tmp_path, kernel, monkeypatch):
    """Nothing proves KVM works for it: on this kind of machine /dev/kvm opens and hangs kernels."""
    monkeypatch.setattr(accel, "KVM_DEVICE", tmp_path / "kvm")
    (tmp_path / "kvm").touch()
    files = Files({"bzimage": kernel}, DECLARED.derivations, {}, tmp_path / "cache", SANDBOX)
    assert accel.choose("auto", None, files, "qemu-system-x86_64", tmp_path, 5, SANDBOX, PATTERNS) == "tcg"
    assert accel.choose("kvm", None, files, "qemu-system-x86_64", tmp_path, 5, SANDBOX, PATTERNS) == "kvm"


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


def test_a_build_that_boots_under_nothing_proves_nothing_about_kvm(tmp_path, kernel, monkeypatch):
    """The probe may boot a series' broken kernel: that fails under TCG too, so it is neither
    remembered nor held against KVM asked for; the next good build decides."""
    monkeypatch.setattr(accel, "KVM_DEVICE", tmp_path / "kvm")
    (tmp_path / "kvm").touch()
    broken = tmp_path / "broken-bzImage"
    broken.write_bytes(kernel.read_bytes()[:600 * 1024])   # cut short: the decompressor finds garbage

    def choose(setting: str, image: Path) -> str:
        files = Files({"bzimage": image}, DECLARED.derivations, {}, tmp_path / "cache", SANDBOX)
        return accel.choose(setting, LINUX.probe, files, "qemu-system-x86_64", tmp_path, 5, SANDBOX, PATTERNS)
    assert (choose("auto", broken), choose("kvm", broken)) == ("tcg", "kvm")
    assert not (tmp_path / "kvm-probe-linux.json").exists()
    assert choose("auto", kernel) in ("kvm", "tcg") and (tmp_path / "kvm-probe-linux.json").exists()


def test_the_probe_agrees_with_a_real_kvm_boot(bootbot, kernel, tmp_path):
    """On this machine kind /dev/kvm opens but hangs kernels: asked for, KVM is then refused in
    one line; where it works, the boot runs under it."""
    files = Files({"bzimage": kernel}, DECLARED.derivations, {}, tmp_path, SANDBOX)
    works = accel.boots(LINUX.probe, "kvm", files, "qemu-system-x86_64", 10, SANDBOX, PATTERNS)
    run = bootbot("boot", "--bzimage", str(kernel), "--entries", "bios", "--accel", "kvm", "--silence", "15")
    if works:
        assert run.code == 0 and run.json["accel"] == "kvm", run.stderr
    else:
        assert run.code == 2 and run.stderr.startswith("bootbot: KVM was asked for, but")
        assert len(run.stderr.strip().splitlines()) == 1
