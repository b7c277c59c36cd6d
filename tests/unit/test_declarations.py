"""Entry declarations: complete, mapped to the right sources, and extended by data alone."""
import pytest
from conftest import DECLARED, ENTRIES, LINUX, with_q35

from bot import declarations
from bot.boots.files import Files
from bot.sandbox import Sandbox
from bot.words import LabError

RUN = {"accel": "tcg", "nonce": "abc123", "append": ""}


def test_the_five_linux_entries_and_what_they_boot():
    assert list(LINUX.entries) == ["bios", "efi", "pvh", "xen-pv", "xen-pvh"]
    assert set(ENTRIES["bios"].files) == {"bzimage", "initrd"}
    assert set(ENTRIES["efi"].files) == {"ovmf_code", "ovmf_vars", "bzimage", "initrd"}
    assert set(ENTRIES["pvh"].files) == {"vmlinux", "initrd"}
    assert set(ENTRIES["xen-pv"].files) == {"hypervisor", "bzimage", "initrd"}
    assert [e.name for e in ENTRIES.values() if e.experimental] == ["xen-pvh"]
    for e in ENTRIES.values():
        assert set(e.writable) <= set(e.files)
    assert DECLARED.host_files(LINUX) == ["busybox", "ovmf_code", "ovmf_vars", "xen"]
    assert DECLARED.host_files(DECLARED.trees["xen"]) == ["busybox", "dom0", "l0_root", "l0_xen", "ovmf_code",
                                                          "ovmf_vars"]


def test_xen_gets_the_kernel_and_initramfs_as_multiboot_modules():
    args = ENTRIES["xen-pv"].qemu_args({**RUN, "append": "earlycon=uart,io,0x3f8"})
    assert args[args.index("-kernel") + 1] == "hypervisor"
    # QEMU splits modules on commas; the command line's own commas are doubled.
    assert args[args.index("-initrd") + 1] == \
        "bzimage console=hvc0 panic=-1 bootbot_nonce=abc123 earlycon=uart,,io,,0x3f8,initrd"
    assert args[args.index("-cpu") + 1] == "qemu64,+svm"
    assert args[:2] == ["-accel", "tcg"]


def test_source_paths_map_to_entries():
    def touched_by(path):
        return sorted(e.name for e in DECLARED.select([path]).entries)

    assert touched_by("arch/x86/kernel/head_64.S") == sorted(LINUX.entries)
    assert touched_by("arch/x86/boot/compressed/head_64.S") == ["bios", "efi", "xen-pv", "xen-pvh"]
    assert touched_by("drivers/firmware/efi/libstub/x86-stub.c") == ["efi"]
    assert touched_by("arch/x86/platform/pvh/head.S") == ["pvh", "xen-pvh"]
    assert touched_by("arch/x86/xen/enlighten_pv.c") == ["xen-pv", "xen-pvh"]
    assert DECLARED.select(["Documentation/index.rst"]).reason == "the series touches no boot path"
    assert [e.name for e in DECLARED.select(["arch/x86/boot/main.c"], only=["bios"]).entries] == ["bios"]
    # a retest boots what it names, touched or not; a name it does not know is answered with the list
    assert [e.name for e in DECLARED.select(["arch/x86/boot/main.c"], only=["pvh"]).entries] == ["pvh"]
    assert DECLARED.select(["arch/x86/boot/main.c"], only=["floppy"]).reason == \
        "no entry named floppy: the linux tree's entries are bios, efi, pvh, xen-pv, xen-pvh"


def test_xen_paths_map_to_xen_entries_the_entries_own_first():
    def touched_by(*paths):
        selection = DECLARED.select(list(paths))
        return selection.tree.name, sorted(e.name for e in selection.entries)

    xen = sorted(DECLARED.trees["xen"].entries)
    assert touched_by("xen/arch/x86/boot/head.S") == ("xen", ["xen-mb1", "xen-mb2-bios", "xen-mb2-efi", "xen-pvh"])
    assert touched_by("xen/arch/x86/guest/xen/pvh-boot.c") == ("xen", ["xen-pvh"])
    assert touched_by("xen/arch/x86/efi/efi-boot.h") == ("xen", ["xen-efi", "xen-mb2-efi"])
    assert touched_by("xen/arch/x86/boot/trampoline.S") == ("xen", xen)   # the APs' start, for every entry
    assert touched_by("xen/arch/x86/setup.c") == ("xen", xen)   # no entry's own: the common paths
    assert touched_by("xen/common/efi/boot.c", "docs/misc/efi.pandoc") == ("xen", ["xen-efi", "xen-mb2-efi"])
    assert touched_by("docs/misc/efi.pandoc") == ("xen", [])
    # other architectures' code, which no x86 build compiles: under xen/, yet it boots nothing
    assert touched_by("xen/arch/arm/setup.c", "xen/arch/riscv/include/asm/mm.h") == ("xen", [])
    assert DECLARED.select(["xen/arch/arm/setup.c"]).reason == \
        "the series touches only code a Xen (x86_64) build does not compile (xen/arch/arm/setup.c)"
    assert touched_by("xen/arch/arm/setup.c", "xen/arch/x86/setup.c") == ("xen", xen)
    assert touched_by("xen/include/public/arch-arm.h", "xen/include/public/xen.h") == ("xen", xen)


def test_a_series_is_routed_by_its_paths_then_by_which_tree_has_its_files(tmp_path):
    both = ["tools/xl/xl.c"]   # linux.git has a tools/ too
    assert DECLARED.select(both).reason == "the series fits both the linux and xen trees: give the tree with --tree"
    has = {"xen": {"tools/xl/xl.c"}, "linux": set()}
    chosen = DECLARED.select(both, present=lambda tree, files: has[tree.name] & set(files))
    assert chosen.tree.name == "xen" and chosen.reason == "the series touches no boot path"
    assert DECLARED.select(["net/core/dev.c", "xen/common/sched/core.c"]).reason == \
        "the series fits no tree bootbot knows"
    assert DECLARED.select(["tools/xl/xl.c", "arch/x86/boot/main.c"], kind="xen").reason == \
        "the series does not fit the xen tree (it touches arch/x86/boot/main.c)"   # the file that does not


def test_the_kind_of_a_tree_is_known_by_its_marks(tmp_path):
    for kind, marks in (("xen", ["xen/arch/x86/boot/head.S", "tools/xl/xl.c"]),
                        ("linux", ["arch/x86/boot/header.S", "Kbuild"])):
        for mark in marks:
            (tmp_path / kind / mark).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / kind / mark).touch()
        assert DECLARED.kind_of(tmp_path / kind) == kind
    assert DECLARED.kind_of(tmp_path) is None


def test_a_new_entry_is_one_declaration(tmp_path):
    added = with_q35(tmp_path / "checks").trees["linux"].entries["bios-q35"]
    args = added.qemu_args(RUN)
    assert args[args.index("-machine") + 1] == "q35"
    assert args[args.index("-append") + 1] == "console=ttyS0 panic=-1 bootbot_nonce=abc123"
    assert args[:2] == ["-accel", "tcg"]   # the common arguments come with it


def test_a_missing_file_fails_each_entry_that_needs_it_and_says_which(tmp_path):
    files = Files({"bzimage": tmp_path / "absent"}, DECLARED.derivations, {}, tmp_path, Sandbox(64000))
    for name, says in [("bzimage", "absent: no such file"), ("vmlinux", "absent: no such file"),
                       ("ovmf_code", "no ovmf_code: neither given, derived nor the host's")]:
        folder = tmp_path / name
        folder.mkdir()
        with pytest.raises(LabError, match=says):
            files.stage([name], (), {}, folder)
    assert DECLARED.missing_files([ENTRIES["efi"]], {}, {"ovmf_code": 1, "ovmf_vars": 1, "busybox": 1}) == \
        {"bzimage": ["efi"]}


def test_a_broken_declaration_is_one_lab_error_naming_its_file(tmp_path):
    import shutil
    copy = tmp_path / "checks"
    shutil.copytree(DECLARED.folder, copy)
    (copy / "files.toml").write_text('[vmlinux]\nfrom = ["bzimage"]\nstep = "no-such-step"\n')
    with pytest.raises(LabError, match="no step 'no-such-step'"):
        declarations.load(copy)
    (copy / "files.toml").write_text("[vmlinux\n")
    with pytest.raises(LabError, match="files.toml"):
        declarations.load(copy)
    shutil.copyfile(DECLARED.folder / "files.toml", copy / "files.toml")
    linux = copy / "trees" / "linux.toml"   # a probe that cannot be run under TCG cannot tell a broken build
    linux.write_text(linux.read_text().replace('qemu = ["-accel", "{accel}", ', 'qemu = ["-accel", "kvm", '))
    with pytest.raises(LabError, match=r"linux.toml: ValueError: \[probe\] qemu must say"):
        declarations.load(copy)
    shutil.copyfile(DECLARED.folder / "trees" / "linux.toml", linux)
    linux.write_text(linux.read_text() + 'fragment = "linux.config"\n')   # meant for the kind, after [[tags]]
    with pytest.raises(LabError, match=r"linux.toml: ValueError: \[\[tags\]\] has pattern and branches, not fragment"):
        declarations.load(copy)
