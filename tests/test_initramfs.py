"""The initramfs, read back by Debian's cpio, not by our own code."""
import subprocess
from pathlib import Path

from checks import initramfs


def listing(archive: Path) -> str:
    return subprocess.run(["cpio", "-itv"], stdin=archive.open("rb"), capture_output=True,
                          text=True, check=True).stdout


def extract(archive: Path, member: str) -> str:
    return subprocess.run(["cpio", "-i", "--to-stdout", member], stdin=archive.open("rb"),
                          capture_output=True, text=True, check=True).stdout


def test_holds_init_busybox_and_a_console(tmp_path):
    archive = tmp_path / "initrd"
    initramfs.build(archive, Path("/bin/busybox"), "abc123")
    files = listing(archive)
    assert "-rwxr-xr-x" in next(line for line in files.splitlines() if line.endswith(" init"))
    assert any(line.endswith("bin/busybox") for line in files.splitlines())
    assert any(line.startswith("c") and "5,   1" in line for line in files.splitlines())
    assert initramfs.marker("abc123") in extract(archive, "init")


def test_each_run_has_its_own_nonce():
    assert initramfs.new_nonce() != initramfs.new_nonce()
    assert not initramfs.marker_pattern("aaaa").search(initramfs.marker("bbbb"))
