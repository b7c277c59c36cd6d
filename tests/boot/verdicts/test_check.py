"""`bootbot check` on real series against a real Linux tree: apply, build, boot, compare, bisect.

The tree is made once per machine from Debian's linux-source tarball (scripts/linux-tree); the
session's first check builds from empty folders (tests/test_cold.py), the ones after it incrementally."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trees
from harness import ROOT
from trees import add_after, replace

MISC_C = "arch/x86/boot/compressed/misc.c"
PVH_C = "arch/x86/platform/pvh/enlighten.c"
MISC_ANCHOR = '#include "misc.h"\n'
PVH_ANCHOR = "#include <xen/interface/hvm/start_info.h>\n"


def harmless(path: str, anchor: str, n: int = 1):
    return add_after(anchor, f"/* bootbot test {n}: a harmless comment */\n")


@pytest.fixture(scope="session")
def tree() -> Path:
    return trees.linux()


@pytest.fixture
def check(tree, session_config, tmp_path):
    def run(mbox: Path, config: Path = session_config) -> trees.Check:
        return trees.Check(mbox, tree, config, tmp_path / "outcome.json")
    return run


def series(tree: Path, tmp_path: Path, patches) -> Path:
    return trees.make_series(tree, tmp_path / "series", patches)


def test_harmless_series_passes_everywhere(tree, check, tmp_path):
    run = check(series(tree, tmp_path, [
        ("x86/boot: comment the decompressor", {MISC_C: harmless(MISC_C, MISC_ANCHOR)}),
        ("x86/pvh: comment the entry", {PVH_C: harmless(PVH_C, PVH_ANCHOR)}),
    ]))
    assert run.code == 0, run.stdout + run.stderr
    assert run.json["verdict"] == "pass"
    assert run.json["culprit"] is None
    assert [p["index"] for p in run.json["series"]["patches"]] == [1, 2]
    assert run.json["series"]["patches"][1]["subject"] == "x86/pvh: comment the entry"
    assert run.statuses() == {name: ("pass", "pass") for name in ("bios", "efi", "pvh", "xen-pv", "xen-pvh")}
    assert run.stdout.startswith("bootbot: PASS") and "| Tested-by: bootbot" in run.stdout


def test_a_series_that_adds_a_kernel_message_saying_warning_passes(tree, check, tmp_path):
    """A pr_warn() whose text begins "WARNING:" is no WARN (only __warn()'s own lines are,
    checks/console.toml): the patch that adds one is not blamed for a regression."""
    notice = "WARNING: the bootbot= option is deprecated and will be removed in v6.2!"
    run = check(series(tree, tmp_path, [
        ("init: say that an option is deprecated",
         {"init/main.c": add_after("\tkernel_init_freeable();\n", f'\tpr_warn("{notice}\\n");\n')}),
    ]))
    assert run.code == 0, run.stdout + run.stderr
    assert run.json["verdict"] == "pass" and run.json["culprit"] is None
    assert run.statuses() == {name: ("pass", "pass") for name in ("bios", "efi", "pvh", "xen-pv", "xen-pvh")}
    for name in ("bios", "efi", "pvh", "xen-pv"):   # xen-pvh succeeds before init runs
        console = (Path(run.json["folder"]) / run.json["entries"][name]["log"]).read_text(errors="replace")
        assert f"] {notice}" in console, name


def test_breaking_the_16_bit_setup_breaks_bios_only(tree, check, tmp_path):
    triple_fault = ("\t{ static const struct { u16 limit; u32 base; } __attribute__((packed)) none = { 0, 0 };\n"
                    "\t  asm volatile(\"lidtl %0; int $3\" : : \"m\" (none)); }\n")
    run = check(series(tree, tmp_path, [
        ("x86/boot: fault in main()", {"arch/x86/boot/main.c": add_after("\tinit_default_io_ops();\n", triple_fault)}),
    ]))
    assert run.code == 1, run.stdout + run.stderr
    assert run.json["verdict"] == "regression"
    assert run.statuses()["bios"] == ("fail", "pass")
    assert run.statuses()["efi"] == ("pass", "pass") and run.statuses()["xen-pv"] == ("pass", "pass")
    assert run.json["culprit"]["index"] == 1
    assert "First bad patch: [1/1] x86/boot: fault in main()" in run.stdout
    assert "qemu-system-x86_64" in run.stdout and "| Reported-by: bootbot" in run.stdout
    # located on the retry, from QEMU's exception log: in 16-bit code, by setup.elf
    where = run.json["entries"]["bios"]["location"]
    assert where["what"].startswith("triple fault: #") and where["mode"] == "real", where
    assert where["symbol"].startswith("main+") and where["file"] == "arch/x86/boot/main.c", where
    assert run.json["entries"]["bios"]["changed"] == {"patch": 1, "line": triple_fault.splitlines()[1]}


def test_a_hang_in_16_bit_code_is_located_by_the_registers_at_the_silence_limit(tree, session_config, tmp_path):
    """Nothing reaches the console from the setup code: where it spins is read from the vCPU."""
    checks = tmp_path / "checks"
    shutil.copytree(ROOT / "checks", checks)
    entries = checks / "entries" / "linux.toml"   # the limit it waits for, shorter than a real setup needs
    entries.write_text(entries.read_text().replace('[entries.bios]\n', '[entries.bios]\nsilence = 15\n'))
    config = tmp_path / "bootbot.toml"
    config.write_text(session_config.read_text() + f'[checks]\ndir = "{checks}"\n[boot]\nconfirm = 2\n')
    run = trees.Check(series(tree, tmp_path, [
        ("x86/boot: spin in main()", {"arch/x86/boot/main.c": add_after("\tinit_default_io_ops();\n",
                                                                        '\tasm volatile("1: jmp 1b");\n')}),
    ]), tree, config, tmp_path / "outcome.json")
    assert run.statuses()["bios"] == ("timeout", "pass"), run.stdout + run.stderr
    where = run.json["entries"]["bios"]["location"]
    assert (where["what"], where["mode"], where["file"]) == ("hung", "real", "arch/x86/boot/main.c"), where
    assert where["symbol"].startswith("main+")
    line = (tree / "arch/x86/boot/main.c").read_text().splitlines().index("\tinit_default_io_ops();") + 2
    assert where["line"] == line
    assert run.stdout.startswith("bootbot: REGRESSION: bios stops booting at [PATCH 1/1] x86/boot: spin in main()\n"
                                 f"bios: hung at {where['symbol']} (arch/x86/boot/main.c:{line})\n"
                                 '  patch 1 made that line: asm volatile("1: jmp 1b");\n'), run.stdout


def test_breaking_the_efi_stub_breaks_efi_only(tree, check, tmp_path):
    entry = "efi_pe_entry(efi_handle_t handle,\n\t\t\t\t   efi_system_table_t *sys_table_arg)\n{\n"
    run = check(series(tree, tmp_path, [
        ("efi/x86: trap on entry", {"drivers/firmware/efi/libstub/x86-stub.c": add_after(entry, '\tasm volatile("ud2");\n')}),
    ]))
    assert run.json["verdict"] == "regression", run.stdout
    assert run.statuses() == {"efi": (run.statuses()["efi"][0], "pass")}
    assert run.statuses()["efi"][0] in ("fail", "timeout")
    assert run.json["culprit"]["index"] == 1


def test_the_middle_patch_that_breaks_pvh_is_the_culprit(tree, check, tmp_path):
    run = check(series(tree, tmp_path, [
        ("x86/pvh: comment the entry", {PVH_C: harmless(PVH_C, PVH_ANCHOR, 1)}),
        ("x86/pvh: trap at pvh_start_xen", {"arch/x86/platform/pvh/head.S": replace(
            "SYM_CODE_START_LOCAL(pvh_start_xen)\n\tUNWIND_HINT_EMPTY\n",
            "SYM_CODE_START_LOCAL(pvh_start_xen)\n\tUNWIND_HINT_EMPTY\n\tud2\n")}),
        ("x86/pvh: comment the entry again", {PVH_C: harmless(PVH_C, PVH_ANCHOR, 2)}),
    ]))
    assert run.code == 1, run.stdout + run.stderr
    assert run.json["verdict"] == "regression"
    assert run.statuses()["pvh"] == ("fail", "pass")
    assert run.json["culprit"]["index"] == 2
    assert run.json["culprit"]["subject"] == "x86/pvh: trap at pvh_start_xen"
    # prefixes 1 (boots) and 2 (breaks): two builds to name the culprit, no more
    assert [b["phase"] for b in run.json["builds"] if b["phase"].startswith("patches")] == ["patches-1-1", "patches-1-2"]
    assert [a["status"] for a in run.json["entries"]["pvh"]["attempts"]] == ["fail", "fail", "fail"]
    # the machine reset without a word: located from QEMU's exception log of a retry
    head = (tree / "arch/x86/platform/pvh/head.S").read_text().splitlines()
    line = head.index("SYM_CODE_START_LOCAL(pvh_start_xen)") + 3   # the ud2 after it and the hint
    assert (f"pvh: triple fault: #UD at pvh_start_xen+0x0 (arch/x86/platform/pvh/head.S:{line})\n"
            "  patch 2 made that line: ud2\n") in run.stdout, run.stdout


def test_breaking_startup_xen_breaks_xen_pv(tree, check, tmp_path):
    start = "SYM_CODE_START(startup_xen)\n\tUNWIND_HINT_EMPTY\n\tANNOTATE_NOENDBR\n\tcld\n"
    run = check(series(tree, tmp_path, [
        ("x86/xen: trap at startup_xen", {"arch/x86/xen/xen-head.S": add_after(start, "\tud2\n")}),
    ]))
    assert run.json["verdict"] == "regression", run.stdout
    assert run.statuses()["xen-pv"] == ("fail", "pass")
    assert run.json["culprit"]["index"] == 1
    # from Xen's report of dom0's crash, looked up in the series' vmlinux
    head = (tree / "arch/x86/xen/xen-head.S").read_text().splitlines()
    line = head.index("SYM_CODE_START(startup_xen)") + 5   # the ud2 after cld
    assert f"xen-pv: dom0 crashed: #UD at startup_xen+0x1 (arch/x86/xen/xen-head.S:{line})\n" in run.stdout, run.stdout


def test_a_series_that_does_not_apply_names_the_patch(tree, check, tmp_path):
    mbox = series(tree, tmp_path, [
        ("x86/boot: comment the decompressor", {MISC_C: harmless(MISC_C, MISC_ANCHOR)}),
        ("x86/pvh: comment the entry", {PVH_C: harmless(PVH_C, PVH_ANCHOR)}),
    ])
    mbox.write_text(mbox.read_text().replace(" #include <xen/xen.h>\n", " #include <xen/xen-elsewhere.h>\n"))
    run = check(mbox)
    assert run.code == 1
    assert run.json["verdict"] == "apply-failed"
    assert run.json["culprit"]["index"] == 2
    assert any("does not apply" in line or "patch failed" in line for line in run.json["detail"]), run.json
    assert run.json["entries"] == {}


def test_a_series_that_breaks_the_build_names_the_patch_and_the_error(tree, check, tmp_path):
    run = check(series(tree, tmp_path, [
        ("x86/boot: comment the decompressor", {MISC_C: harmless(MISC_C, MISC_ANCHOR)}),
        ("x86/boot: break the decompressor", {MISC_C: add_after(MISC_ANCHOR, "int bootbot_broken = ;\n")}),
        ("x86/pvh: comment the entry", {PVH_C: harmless(PVH_C, PVH_ANCHOR)}),
    ]))
    assert run.code == 1
    assert run.json["verdict"] == "build-failed"
    assert run.json["culprit"]["index"] == 2
    assert any("misc.c:" in line and "error:" in line for line in run.json["detail"]), run.json["detail"]


def test_a_build_that_floods_its_log_is_stopped_at_the_limit_and_says_so(tree, check, session_config, tmp_path):
    config = tmp_path / "limits.toml"
    config.write_text(session_config.read_text() + "[sandbox]\nlog_mb = 2\n")
    run = check(series(tree, tmp_path, [
        ("x86/boot: a Makefile that never stops talking",
         {"arch/x86/boot/Makefile": lambda text: text + "$(shell yes 'bootbot flood' >&2)\n"}),
    ]), config)
    assert run.code == 1
    assert run.json["verdict"] == "build-failed" and run.json["culprit"]["index"] == 1
    assert run.json["detail"][0] == "stopped: the build went over the output limit (2 MiB of log)"
    assert "the output limit" in run.stdout


def test_a_series_off_the_boot_paths_is_skipped_at_once(tree, check, tmp_path):
    run = check(series(tree, tmp_path, [
        ("docs: a note", {"Documentation/admin-guide/README.rst": lambda text: ".. bootbot test\n\n" + text}),
    ]))
    assert run.code == 0
    assert run.json["verdict"] == "skip" and run.json["entries"] == {}
    assert "touches no boot path" in run.stdout


@pytest.mark.parametrize("content, says", [
    (b"", "is empty"),
    (bytes(range(256)) * 4, "not an mbox"),
    (b"From me@x Mon Jan  1 00:00:00 2024\nFrom: a@b\nSubject: hello\nMessage-ID: <1@b>\n\nno patch here\n", "has no patch"),
])
def test_malformed_input_is_one_line_and_exit_2(tree, check, tmp_path, content, says):
    mbox = tmp_path / "input.mbox"
    mbox.write_bytes(content)
    run = check(mbox)
    assert run.code == 2
    assert says in run.stderr and len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_a_lab_failure_is_an_error_never_blamed_on_the_series(tree, check, session_config, tmp_path):
    config = tmp_path / "lab.toml"
    config.write_text(session_config.read_text() + '[lab]\novmf_code = "/nonexistent/OVMF_CODE.fd"\n')
    mbox = series(tree, tmp_path, [
        ("efi/x86: comment the stub", {"drivers/firmware/efi/libstub/x86-stub.c": add_after(
            '#include "efistub.h"\n', "/* bootbot test: a harmless comment */\n")}),
    ])
    run = check(mbox, config)
    assert run.code == 2
    assert run.json["verdict"] == "error" and run.json["culprit"] is None
    assert run.json["entries"]["efi"]["status"] == "error"
    assert "Reported-by" not in run.stdout and "nothing is blamed" in run.stdout
