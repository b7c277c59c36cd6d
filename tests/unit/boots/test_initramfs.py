"""The initramfs, read back by Debian's cpio, not by our own code."""
import subprocess
from pathlib import Path

from conftest import DECLARED

from bot.boots import initramfs


def listing(archive: Path) -> str:
    return subprocess.run(["cpio", "-itv"], stdin=archive.open("rb"), capture_output=True,
                          text=True, check=True).stdout


def extract(archive: Path, member: str) -> str:
    return subprocess.run(["cpio", "-i", "--to-stdout", member], stdin=archive.open("rb"),
                          capture_output=True, text=True, check=True).stdout


def test_holds_init_busybox_and_a_console(tmp_path):
    archive = tmp_path / "initrd"
    initramfs.build(archive, "#!/bin/busybox sh\necho hello\n", {"bin/busybox": Path("/bin/busybox")})
    files = listing(archive)
    assert "-rwxr-xr-x" in next(line for line in files.splitlines() if line.endswith(" init"))
    assert any(line.endswith("bin/busybox") for line in files.splitlines())
    assert any(line.startswith("c") and "5,   1" in line for line in files.splitlines())
    assert extract(archive, "init") == "#!/bin/busybox sh\necho hello\n"


def test_init_prints_the_marker_with_the_nonce_from_its_environment(tmp_path):
    """The declared /init, run by the host's busybox as the kernel runs it: the nonce of the
    command line (bootbot_nonce=) in its environment; poweroff replaced, lest it power off."""
    init = DECLARED.derivations["initrd"].options["init"].replace("poweroff -f", "true")
    script = tmp_path / "init"
    script.write_text(init.replace("#!/bin/busybox sh", "#!/bin/sh"))
    said = subprocess.run(["/bin/busybox", "sh", str(script)], env={"bootbot_nonce": "abc123"},
                          capture_output=True, text=True, check=True).stdout
    assert said == "bootbot: userspace reached, nonce abc123\n"
    assert all(e.success_pattern("abc123").search(said) for e in DECLARED.all_entries()
               if "nonce" in e.success)
