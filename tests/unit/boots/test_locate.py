"""Where a boot died, from what QEMU and Xen left in its run folder (recorded from real boots of
a kernel with `ud2` at pvh_start_xen and at startup_xen, and a `1: jmp 1b` in the 16-bit main()).
The lookup in a real build's files, and QMP, are tested by the boots of tests/test_check.py."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness import DATA

from bot import declarations
from bot.boots import diagnostics
from bot.boots.diagnostics import INTERRUPTS, REGISTERS, Diagnostics
from bot.boots.locate import Location, locate
from bot.boots.symbols import Symbols

LOCATE = DATA / "locate"
ADDRESSES = declarations.load().patterns.addresses


def run_folder(tmp_path: Path, **files: str) -> Path:
    for name, recorded in files.items():
        shutil.copyfile(LOCATE / recorded, tmp_path / name)
    return tmp_path


def test_a_reset_is_located_by_the_registers_and_named_by_the_fault_that_began_it(tmp_path):
    folder = run_folder(tmp_path, **{REGISTERS: "pvh-ud2.registers"})
    assert locate(folder, "", ADDRESSES, Symbols({})) == Location("reset", "protected", "0x1000480")
    # a retry's exception log: #UD, then #GP delivering it (the IDT is empty), then #DF, then the reset
    run_folder(tmp_path, **{INTERRUPTS: "pvh-ud2.interrupts"})
    assert locate(folder, "", ADDRESSES, Symbols({})) == Location("triple fault: #UD", "protected", "0x1000480")


def test_a_triple_fault_in_real_mode_is_named_from_the_exceptions_alone(tmp_path):
    """QEMU logs no delivery in real mode, only the exceptions raised: the chain is theirs."""
    (tmp_path / INTERRUPTS).write_text("CPU Reset (CPU 0)\nEAX=00000000\ncheck_exception old: 0xffffffff new 0xd\n"
                                       "check_exception old: 0xd new 0xd\ncheck_exception old: 0x8 new 0xd\n"
                                       "Triple fault\n")
    (tmp_path / REGISTERS).write_text("when: guest-reset\n" + (LOCATE / "bios-hang.registers").read_text().partition("\n")[2])
    assert locate(tmp_path, "", ADDRESSES, Symbols({})) == Location("triple fault: #GP", "real", "0x111e7")


def test_a_hung_cpu_is_located_by_its_registers_in_16_bit_code(tmp_path):
    folder = run_folder(tmp_path, **{REGISTERS: "bios-hang.registers"})
    assert locate(folder, "", ADDRESSES, Symbols({})) == Location("hung", "real", "0x111e7")


def test_a_crashed_dom0_is_located_from_xens_report_with_the_exception_it_names(tmp_path):
    console = (LOCATE / "xen-pv-ud2.console").read_text()
    assert locate(tmp_path, console, ADDRESSES, Symbols({})) == Location("dom0 crashed: #UD", "long", "0xffffffff818de161")


def test_nothing_is_located_without_registers_or_a_crash_report(tmp_path):
    run_folder(tmp_path, **{INTERRUPTS: "pvh-ud2.interrupts"})
    assert locate(tmp_path, "(XEN) RIP:    e008:[<ffff82d040204b78>] Xen's own, symbolized", ADDRESSES,
                  Symbols({})) is None


def test_the_place_is_said_with_its_source_line_or_what_is_known():
    where = Location("triple fault: #UD", "protected", "0x1000480", "pvh_start_xen+0x0",
                     "arch/x86/platform/pvh/head.S", 54, "vmlinux")
    assert str(where) == "triple fault: #UD at pvh_start_xen+0x0 (arch/x86/platform/pvh/head.S:54)"
    assert str(Location("hung", "long", "0xffff82d040200000")) == \
        "hung at 0xffff82d040200000 (long mode; no file of the build has it)"


def test_qemus_exception_log_is_read_as_written_and_only_its_end_kept(tmp_path):
    """QEMU under Xen logs megabytes of hypercalls a boot: the run folder keeps the last part."""
    with Diagnostics(tmp_path, exceptions=True) as diagnosing:
        fifo = tmp_path / diagnosing.args()[-1]
        size = 3 * 2 ** 20
        writer = subprocess.run(["dd", "if=/dev/zero", f"of={fifo}", "bs=64k", f"count={size // 65536}"],
                                capture_output=True, timeout=60)
        subprocess.run(["sh", "-c", f"echo Triple fault >> {fifo}"], check=True, timeout=10)
    assert writer.returncode == 0
    kept = (tmp_path / INTERRUPTS).read_bytes()
    assert len(kept) == diagnostics.KEEP_BYTES and kept.endswith(b"\0Triple fault\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [INTERRUPTS]   # the FIFO is gone


def test_registers_are_quoted_only_where_the_console_gave_no_report_of_its_own(tmp_path):
    """A kernel that panics says where itself; the registers at the reset it then asks for
    would name its reboot code."""
    from bot.boots.console import Decision
    from bot.boots.runner import Where, _locate
    folder = run_folder(tmp_path, **{REGISTERS: "pvh-ud2.registers"})
    (folder / "console.log").write_text("[    0.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    where = Where(declarations.load().patterns, Symbols({}), exceptions=False)
    assert _locate(folder, folder / "console.log", where, Decision("fail", "Kernel panic", "panic")) is None
    reset = _locate(folder, folder / "console.log", where, Decision("fail", "the machine reset", "reset"))
    assert reset == Location("reset", "protected", "0x1000480")
