"""Entry declarations: complete, mapped to the right sources, and extended by data alone."""
from checks import entry
from checks.artifacts import Artifacts

KNOWN_FILES = {"bzimage", "vmlinux", "xen", "initrd", "ovmf_code", "ovmf_vars"}


def test_the_five_entries_and_what_they_boot():
    entries = entry.load()
    assert list(entries) == ["bios", "efi", "pvh", "xen-pv", "xen-pvh"]
    assert set(entries["bios"].files) == {"bzimage", "initrd"}
    assert set(entries["efi"].files) == {"ovmf_code", "ovmf_vars", "bzimage", "initrd"}
    assert set(entries["pvh"].files) == {"vmlinux", "initrd"}
    assert set(entries["xen-pv"].files) == {"xen", "bzimage", "initrd"}
    assert [e.name for e in entries.values() if e.experimental] == ["xen-pvh"]
    for e in entries.values():
        assert set(e.files) <= KNOWN_FILES
        assert set(e.writable) <= set(e.files)


def test_xen_gets_the_kernel_and_initramfs_as_multiboot_modules():
    xen_pv = entry.load()["xen-pv"]
    args = xen_pv.qemu_args("tcg", "console=hvc0 earlycon=uart,io,0x3f8")
    assert args[args.index("-kernel") + 1] == "xen"
    # QEMU splits modules on commas; the command line's own commas are doubled.
    assert args[args.index("-initrd") + 1] == "bzimage console=hvc0 earlycon=uart,,io,,0x3f8,initrd"
    assert args[args.index("-cpu") + 1] == "qemu64,+svm"


def test_source_paths_map_to_entries():
    entries = entry.load()

    def touched_by(path):
        return sorted(name for name, e in entries.items() if e.covers(path))

    assert touched_by("arch/x86/kernel/head_64.S") == sorted(entries)
    assert touched_by("arch/x86/boot/compressed/head_64.S") == ["bios", "efi", "xen-pv", "xen-pvh"]
    assert touched_by("drivers/firmware/efi/libstub/x86-stub.c") == ["efi"]
    assert touched_by("arch/x86/platform/pvh/head.S") == ["pvh", "xen-pvh"]
    assert touched_by("arch/x86/xen/enlighten_pv.c") == ["xen-pv", "xen-pvh"]
    assert touched_by("Documentation/index.rst") == []


def test_a_new_entry_is_one_declaration(tmp_path):
    declarations = entry.ENTRIES_FILE.read_text() + '''
[entries.bios-q35]
description = "bzImage through SeaBIOS on a q35 machine"
machine = "q35"
qemu = ["-kernel", "{bzimage}", "-initrd", "{initrd}", "-append", "{cmdline}"]
'''
    (tmp_path / "entries.toml").write_text(declarations)
    added = entry.load(tmp_path / "entries.toml")["bios-q35"]
    args = added.qemu_args("tcg", added.cmdline)
    assert args[args.index("-machine") + 1] == "q35"
    assert added.covers("arch/x86/kernel/head64.c")   # the common paths come with it


def test_missing_files_are_kept_per_name(tmp_path):
    artifacts = Artifacts({"bzimage": tmp_path / "absent", "ovmf_code": None}, tmp_path)
    artifacts.resolve(["bzimage", "ovmf_code", "vmlinux"])
    assert "no such file" in str(artifacts.found["bzimage"])
    assert "no ovmf_code given" in str(artifacts.found["ovmf_code"])
    assert "no such file" in str(artifacts.found["vmlinux"])   # derived from the missing bzImage
