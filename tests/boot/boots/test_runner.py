"""Real boots of real kernels under QEMU, through the CLI as a user runs it."""
from pathlib import Path

import pytest
from conftest import DECLARED, LINUX, with_q35

from bot import config as configuration
from bot import settings
from bot.boots import runner
from bot.boots.files import Files

CORE = "bios,efi,pvh,xen-pv"


def test_stock_kernel_passes_every_core_entry(bootbot, kernel):
    run = bootbot("boot", "--bzimage", str(kernel), "--entries", CORE)
    assert run.code == 0, run.stdout + run.stderr
    for name in CORE.split(","):
        result = run.json["entries"][name]
        assert result["status"] == "pass", result
        assert result["reason"].startswith("bootbot: userspace reached, nonce ")
        assert result["reason"] in Path(result["log"]).read_text(errors="replace")
        assert (Path(result["log"]).parent / "command").read_text().startswith("qemu-system-x86_64 -accel ")
    assert run.json["accel"] in ("kvm", "tcg")
    assert "pass" in run.stdout and "console logs:" in run.stdout


def test_a_panic_is_a_failure_with_the_panic_line(bootbot, kernel):
    run = bootbot("boot", "--bzimage", str(kernel), "--entries", "bios,pvh",
                  "--append", "rdinit=/nonexistent")
    assert run.code == 1
    for name in ("bios", "pvh"):
        assert run.status(name) == "fail"
        assert "Kernel panic - not syncing" in run.json["entries"][name]["reason"]
        assert run.json["entries"][name]["kind"] == "panic"
        assert run.json["entries"][name]["block"][0] == run.json["entries"][name]["reason"]


def test_a_truncated_bzimage_never_passes(bootbot, kernel, tmp_path):
    truncated = tmp_path / "bzImage"
    truncated.write_bytes(kernel.read_bytes()[:4_000_000])
    run = bootbot("boot", "--bzimage", str(truncated), "--entries", CORE, "--silence", "10")
    assert run.code == 1
    assert {name: run.status(name) for name in CORE.split(",")} == {
        "bios": "fail",      # the decompressor jumps into missing code: the machine resets
        "efi": "timeout",    # OVMF refuses the image and waits at its boot menu
        "pvh": "fail",       # no complete payload to take the vmlinux from
        "xen-pv": "fail",    # Xen panics building dom0
    }


def test_silence_declares_a_hang_early(bootbot, kernel):
    # An init that never finishes: the kernel falls silent and nothing ever decides.
    run = bootbot("boot", "--bzimage", str(kernel), "--entries", "pvh", "--silence", "4",
                  "--append", "rdinit=/bin/busybox -- sleep 1000")
    result = run.json["entries"]["pvh"]
    assert run.code == 1
    assert result["status"] == "timeout"
    assert "no console output for 4 s" in result["reason"]
    assert result["seconds"] < 60   # far below the entry's 180 s limit


def test_missing_firmware_and_qemu_are_lab_errors(bootbot, kernel, state, tmp_path):
    config = tmp_path / "lab.toml"
    config.write_text(f'[state]\ndir = "{state}"\n'
                      '[lab]\novmf_code = "/nonexistent/OVMF_CODE.fd"\nxen = "/nonexistent/xen.gz"\n')
    run = bootbot("boot", "--bzimage", str(kernel), "--entries", "efi,xen-pv", config_file=config)
    assert run.code == 1
    assert run.status("efi") == "error" and "/nonexistent/OVMF_CODE.fd" in run.json["entries"]["efi"]["reason"]
    assert run.status("xen-pv") == "error" and "/nonexistent/xen.gz" in run.json["entries"]["xen-pv"]["reason"]
    config.write_text(f'[state]\ndir = "{state}"\n[lab]\nqemu = "/nonexistent/qemu-system-x86_64"\n')
    run = bootbot("boot", "--bzimage", str(kernel), "--entries", "bios", config_file=config)
    assert run.status("bios") == "error" and "cannot start" in run.json["entries"]["bios"]["reason"]


def test_experimental_entry_fails_the_verdict_only_when_configured(bootbot, kernel, state, tmp_path):
    truncated = tmp_path / "bzImage"
    truncated.write_bytes(kernel.read_bytes()[:4_000_000])
    lenient = bootbot("boot", "--bzimage", str(truncated), "--entries", "xen-pvh")
    assert lenient.status("xen-pvh") == "fail" and lenient.code == 0
    strict = tmp_path / "strict.toml"
    strict.write_text(f'[state]\ndir = "{state}"\n[boot]\nstrict_experimental = true\n')
    assert bootbot("boot", "--bzimage", str(truncated), "--entries", "xen-pvh", config_file=strict).code == 1


def test_xen_pvh_reaches_its_success_line(bootbot, kernel):
    run = bootbot("boot", "--bzimage", str(kernel), "--entries", "xen-pvh")
    assert run.status("xen-pvh") == "pass"
    assert "Booting kernel on Xen PVH" in run.json["entries"]["xen-pvh"]["reason"]


def test_an_entry_declared_in_data_boots_without_code(kernel, config, tmp_path):
    added = with_q35(tmp_path / "checks").trees["linux"].entries["bios-q35"]
    lab = settings.lab(configuration.load(config), accel="tcg")
    files = Files({"bzimage": kernel}, DECLARED.derivations, lab.host, lab.cache, lab.sandbox)
    [result] = runner.boot([added], files, lab, tmp_path / "run", patterns=DECLARED.patterns, probe=LINUX.probe)
    assert result.status == "pass", result
    assert result.log == "bios-q35/console.log" and result.accel == "tcg"


@pytest.mark.parametrize("args, says", [
    (["boot", "--bzimage", "/nonexistent/bzImage"], "/nonexistent/bzImage: no such file"),
    (["boot", "--bzimage", "KERNEL", "--entries", "bios,floppy"], "unknown entry floppy"),
    (["boot", "--bzimage", "KERNEL", "--json", "/nonexistent/dir/r.json"], "no such directory"),
    (["boot"], "give --bzimage: bios, efi, xen-pv, xen-pvh boot it"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_are_one_line_and_exit_2(bootbot, kernel, args, says):
    run = bootbot(*[str(kernel) if a == "KERNEL" else a for a in args])
    assert run.code == 2
    assert says in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_a_broken_configuration_is_one_line_and_exit_2(bootbot, kernel, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[state\n")
    run = bootbot("boot", "--bzimage", str(kernel), config_file=broken)
    assert run.code == 2 and "not valid TOML" in run.stderr and "Traceback" not in run.stderr


def test_a_bad_smtp_url_is_one_line_and_exit_2(bootbot, tmp_path):
    config = tmp_path / "bad-smtp.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[trees.linux]\npath = "{tmp_path}"\n'
                      '[mail]\nsmtp = "mail.example.org"\n')
    run = bootbot("poll", config_file=config)
    assert run.code == 2 and "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert "mail.smtp: SMTP URL 'mail.example.org' is not smtp://host:port" in run.stderr


@pytest.mark.parametrize("old, says", [
    ('[tree]\npath = "/src/linux"\n', "tree.path is now [trees.linux] path"),
    ('[build]\nfragment = "kernel.config"\n', "build.fragment is now the tree's declaration"),
])
def test_an_older_configuration_says_what_to_write_instead(bootbot, kernel, tmp_path, old, says):
    older = tmp_path / "older.toml"
    older.write_text(old)
    run = bootbot("boot", "--bzimage", str(kernel), config_file=older)
    assert run.code == 2 and says in run.stderr and len(run.stderr.strip().splitlines()) == 1
