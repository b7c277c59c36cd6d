"""`bootbot check` on real series against a real Xen tree: build the hypervisor, boot it every way
it is entered (multiboot 1, xen.efi, multiboot 2 from GRUB on BIOS and on EFI), compare, bisect.

The tree is made once per machine from Debian's xen source package (scripts/xen-tree); the
session's workspaces start empty, so the first Xen check here builds from nothing."""
from __future__ import annotations

import email
from email.policy import default
from pathlib import Path

import pytest
import trees
from harness import ROOT, Lab, ids, posted
from trees import add_after, replace

HEAD_S = "xen/arch/x86/boot/head.S"
EFI_BOOT_H = "xen/arch/x86/efi/efi-boot.h"
MB2_END = "        je      trampoline_bios_setup\n"   # the end of the multiboot2 tag loop in __start
LOAD_CHECK = "    if ( xen_phys_start & ((1 << L2_PAGETABLE_SHIFT) - 1) )\n"
ENTRIES = ["xen-mb1", "xen-efi", "xen-mb2-bios", "xen-mb2-efi", "xen-pvh"]
PVH_MAGIC = "        mov     (%ebx), %eax /* mov $XEN_HVM_START_MAGIC_VALUE, %eax */\n"   # in __pvh_start


def harmless(anchor: str, n: int = 1):
    return add_after(anchor, f"        /* bootbot test {n}: a harmless comment */\n")


@pytest.fixture(scope="session")
def xen() -> Path:
    return trees.xen()


@pytest.fixture
def check(xen, session_config, tmp_path):
    def run(patches, config: Path = session_config) -> trees.Check:
        done = trees.Check(trees.make_series(xen, tmp_path / "series", patches), xen, config, tmp_path / "outcome.json")
        assert done.json is not None, done.stdout + done.stderr
        return done
    return run


def test_a_harmless_xen_series_passes_every_entry(check):
    run = check([
        ("x86/boot: comment __start", {HEAD_S: harmless("__start:\n")}),
        ("x86/efi: comment the load-address check", {EFI_BOOT_H: add_after(
            "static void __init efi_arch_load_addr_check(const EFI_LOADED_IMAGE *loaded_image)\n{\n",
            "    /* bootbot test: a harmless comment */\n")}),
    ])
    assert run.code == 0, run.stdout + run.stderr
    assert run.json["tree"] == "xen" and run.json["verdict"] == "pass"
    assert run.statuses() == {name: ("pass", "pass") for name in ENTRIES}
    assert "| Tested-by: bootbot" in run.stdout


def test_breaking_the_multiboot2_tag_loop_fails_only_multiboot2_from_bios(check):
    run = check([
        ("x86/boot: comment __start", {HEAD_S: harmless("__start:\n", 2)}),
        ("x86/boot: end the multiboot2 tag loop elsewhere", {HEAD_S: replace(MB2_END, "        je      not_multiboot\n")}),
    ])
    assert run.code == 1, run.stdout + run.stderr
    assert run.json["verdict"] == "regression" and run.json["regressed"] == ["xen-mb2-bios"]
    assert run.statuses() == {"xen-mb1": ("pass", "pass"), "xen-mb2-bios": ("fail", "pass"),
                              "xen-mb2-efi": ("pass", "pass"), "xen-pvh": ("pass", "pass")}
    assert run.json["entries"]["xen-mb2-bios"]["reason"] == "ERR: Not a Multiboot bootloader!"
    assert run.json["culprit"]["index"] == 2
    assert "First bad patch: [2/2] x86/boot: end the multiboot2 tag loop elsewhere" in run.stdout


def test_breaking_the_efi_load_address_check_fails_only_xen_efi(check):
    run = check([
        ("x86/efi: ask for a 1Gb boundary", {EFI_BOOT_H: replace(
            LOAD_CHECK, "    if ( xen_phys_start & ((1UL << L3_PAGETABLE_SHIFT) - 1) )\n")}),
    ])
    assert run.code == 1, run.stdout + run.stderr
    assert run.statuses() == {"xen-efi": ("fail", "pass"), "xen-mb2-efi": ("pass", "pass")}
    assert run.json["entries"]["xen-efi"]["reason"] == "Xen must be loaded at a 2Mb boundary."
    assert run.json["culprit"]["index"] == 1
    assert "-drive format=raw,file=fat:rw:esp" in run.stdout   # how to boot it again, from the result folder


def test_breaking_the_pvh_entry_fails_only_xen_pvh_nested_in_the_hosts_xen(check, session_config, tmp_path):
    """xen-pvh is experimental: it fails, and the verdict does not, unless strict_experimental."""
    strict = tmp_path / "strict.toml"
    strict.write_text(session_config.read_text() + "[boot]\nstrict_experimental = true\n")
    run = check([("x86/boot: read the wrong start info word", {HEAD_S: replace(
        PVH_MAGIC, "        mov     4(%ebx), %eax\n")})], config=strict)
    assert run.code == 1, run.stdout + run.stderr
    assert run.statuses()["xen-pvh"] == ("fail", "pass")
    assert "Panic on CPU" in run.json["entries"]["xen-pvh"]["reason"]
    assert {n: s for n, s in run.statuses().items() if n != "xen-pvh"} == \
        {"xen-mb1": ("pass", "pass"), "xen-mb2-bios": ("pass", "pass"), "xen-mb2-efi": ("pass", "pass")}
    assert run.json["regressed"] == ["xen-pvh"] and run.json["culprit"]["index"] == 1


def test_a_xen_series_that_breaks_the_build_names_the_patch_and_the_error(check):
    run = check([
        ("x86/boot: comment __start", {HEAD_S: harmless("__start:\n", 3)}),
        ("x86/setup: break the build", {"xen/arch/x86/setup.c": add_after(
            "#include <xen/init.h>\n", "int bootbot_broken = ;\n")}),
    ])
    assert run.code == 1, run.stdout + run.stderr
    assert run.json["verdict"] == "build-failed" and run.json["culprit"]["index"] == 2
    assert any("setup.c:" in line and "error:" in line for line in run.json["detail"]), run.json["detail"]


def test_a_series_touching_only_the_tools_is_skipped(check):
    run = check([("tools/xl: a comment", {"tools/xl/xl.c": lambda text: "/* bootbot test */\n" + text})])
    assert run.code == 0, run.stdout + run.stderr
    assert run.json["verdict"] == "skip" and run.json["tree"] == "xen" and run.json["builds"] == []
    assert "touches no boot path" in run.stdout


def test_the_list_bot_answers_a_xen_series_threaded_to_its_culprit(xen, workspaces, tmp_path):
    """The bundled Xen example, posted to the list: the bot follows both trees and routes it."""
    lab = Lab(tmp_path, trees.linux(), ["regression"], workspaces, xen=xen)
    try:
        messages = posted(ROOT / "examples" / "xen-mb2-regression.mbox")
        for message in messages:
            lab.inbox.deliver(message)
        assert lab.poll().returncode == 0, lab.log
        [reply] = lab.replies(1)
        culprit = email.message_from_bytes(messages[2], policy=default)   # the cover, then patches 1, 2, 3
        assert ids(reply.message["In-Reply-To"]) == ids(culprit["Message-ID"])
        body = reply.message.get_content()
        assert "REGRESSION" in body and "xen-mb2-bios" in body and "First bad patch: [2/3]" in body
        assert "ERR: Not a Multiboot bootloader!" in body
    finally:
        lab.close()
