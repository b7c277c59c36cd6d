"""Trees, entries and derived files as data: a second tree kind is a declaration and no code, and
the files Xen's entries will need (an EFI system partition made per run) can be declared."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import DECLARED
from harness import cli
from tiny_tree import git

from bot.boots.files import Files
from bot.sandbox import Sandbox, SandboxLimits

TOY_TREE = """
description = "a toy tree: its build copies a kernel it holds"
paths = ["toy/"]
[[build]]
run = ["make", "-C", "toy", "O={out}"]
[artifacts]
image = "image"
"""
TOY_ENTRIES = """
[defaults]
cmdline = "console=ttyS0 panic=-1 bootbot_nonce={nonce} {append}"
timeout = 120
silence = 45
success = 'bootbot: userspace reached, nonce {nonce}'
[common]
qemu = ["-accel", "{accel}", "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
        "-no-reboot", "-machine", "pc", "-cpu", "max", "-m", "512"]
[entries.toy-bios]
qemu = ["-kernel", "{image}", "-initrd", "{initrd}", "-append", "{cmdline}"]
paths = ["toy/"]
"""
MAKEFILE = "image:\n\tcp kernel.img $(O)/image\n"


@pytest.fixture
def toy(tmp_path, kernel) -> tuple[Path, Path]:
    """The real declarations plus the toy kind, and a toy tree: a Makefile and a stock kernel."""
    checks = tmp_path / "checks"
    shutil.copytree(DECLARED.folder, checks)
    (checks / "trees" / "toy.toml").write_text(TOY_TREE)
    (checks / "entries" / "toy.toml").write_text(TOY_ENTRIES)
    tree = tmp_path / "toy-tree"
    (tree / "toy").mkdir(parents=True)
    (tree / "toy" / "Makefile").write_text(MAKEFILE)
    (tree / "toy" / "notes.txt").write_text("notes\n")
    shutil.copyfile(kernel, tree / "toy" / "kernel.img")
    git(tree.parent, "init", "-q", "-b", "master", str(tree))
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "a toy tree")
    return checks, tree


def series(tree: Path, out: Path, changes: list[tuple[str, str, str]]) -> Path:
    """An mbox of one commit per (subject, path, new text), as `git format-patch` writes it."""
    base = git(tree, "rev-parse", "HEAD").strip()
    for subject, path, content in changes:
        (tree / path).write_text(content)
        git(tree, "commit", "-q", "-am", subject, "-m", "Signed-off-by: Ann Developer <ann@example.org>")
    made = git(tree, "format-patch", "--cover-letter", f"--base={base}", "-o", str(out), f"{base}..HEAD").split()
    git(tree, "reset", "-q", "--hard", base)
    mbox = out / "series.mbox"
    mbox.write_bytes(b"".join(Path(p).read_bytes() for p in made))
    return mbox


def test_a_tree_kind_declared_in_data_is_built_booted_and_judged(toy, tmp_path):
    checks, tree = toy
    config = tmp_path / "bootbot.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[checks]\ndir = "{checks}"\n'
                      f'[build]\ndir = "{tmp_path / "workspaces"}"\n')
    mbox = series(tree, tmp_path / "series", [
        ("toy: a note", "toy/notes.txt", "notes, more\n"),
        ("toy: ship half the kernel", "toy/Makefile", "image:\n\thead -c 2000000 kernel.img > $(O)/image\n"),
    ])
    out = tmp_path / "outcome.json"
    run = cli("check", str(mbox), "--tree", str(tree), "--json", str(out), config=config)
    assert run.returncode == 1 and out.exists(), run.stdout + run.stderr
    outcome = json.loads(out.read_text())
    assert outcome["tree"] == "toy" and outcome["verdict"] == "regression", run.stdout
    assert outcome["entries"]["toy-bios"]["baseline"] == "pass"
    assert outcome["entries"]["toy-bios"]["status"] == "fail"
    assert outcome["culprit"]["index"] == 2

    # The result folder alone prints the report again, wherever it is moved.
    folder = Path(outcome["folder"])
    moved = folder.rename(tmp_path / "moved")
    again = cli("report", str(moved), config=config, timeout=60)
    assert again.returncode == 1
    assert again.stdout == run.stdout.replace(str(folder), str(moved))


def test_the_efi_system_partition_is_declared_and_made_per_run(tmp_path):
    """What xen.efi boots from (checks/files.toml [esp]): a folder holding it, dom0 and a
    BOOTX64.cfg with the run's command lines, made by a declared command in the sandbox."""
    (tmp_path / "xen.efi").write_bytes(b"MZ a PE image")
    (tmp_path / "bzImage").write_bytes(b"a kernel")
    files = Files({"xen_efi": tmp_path / "xen.efi"}, DECLARED.derivations,
                  {"busybox": Path("/bin/busybox"), "dom0": tmp_path / "bzImage"}, tmp_path / "cache",
                  Sandbox(64000, SandboxLimits(60, 60, 1024, 64, 64, 4)))
    strings = {"cmdline": "console=hvc0 bootbot_nonce=abc", "hypervisor_cmdline": "console=com1"}
    run = tmp_path / "run"
    run.mkdir()
    files.prepare(["esp"], strings)
    files.stage(["esp"], (), strings, run)
    boot = run / "esp" / "EFI" / "BOOT"
    assert sorted(p.name for p in boot.iterdir()) == ["BOOTX64.EFI", "BOOTX64.cfg", "initrd.img", "vmlinuz"]
    assert "options=console=com1\nkernel=vmlinuz console=hvc0 bootbot_nonce=abc\n" in (boot / "BOOTX64.cfg").read_text()
    assert (boot / "BOOTX64.EFI").read_bytes() == b"MZ a PE image" and (boot / "vmlinuz").read_bytes() == b"a kernel"
    assert list((tmp_path / "cache").glob("initrd-*"))   # the initramfs is shared; the partition is the run's
    assert not list((tmp_path / "cache").glob("esp-*"))
