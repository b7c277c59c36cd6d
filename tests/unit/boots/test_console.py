"""The console classifier on captured logs of real boots (fast: no QEMU)."""
import re

import pytest
from conftest import DATA, ENTRIES, PATTERNS, marker

from bot.boots.console import Console, judge_log
from bot.words import ERROR, FAIL, PASS, TIMEOUT

NONCE = "0123456789abcdef"   # the nonce the captured logs were normalised to


def judge(log: str, nonce: str = NONCE, success: re.Pattern | None = None):
    """Feeds a captured log line by line, as the runner does; None when nothing decided."""
    console = Console(success or ENTRIES["bios"].success_pattern(nonce), PATTERNS)
    return judge_log(console, (DATA / log).read_text(errors="replace"))[0], console


@pytest.mark.parametrize("log", ["bios-pass.log", "efi-pass.log", "xen-pv-pass.log", "xen-mb1-pass.log",
                                 "xen-efi-pass.log", "xen-mb2-bios-pass.log", "xen-mb2-efi-pass.log"])
def test_real_boots_to_userspace_pass_on_their_marker(log):
    decision, _ = judge(log)
    assert decision.status == PASS
    assert decision.reason == marker(NONCE)


def test_a_stale_log_with_another_runs_nonce_does_not_pass():
    decision, console = judge("bios-pass.log", nonce="fedcba9876543210")
    assert decision is None
    assert console.exited(0, "").status == FAIL


def test_kernel_panic_fails_on_the_panic_line():
    decision, _ = judge("bios-panic.log")
    assert decision.status == FAIL
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in decision.reason


def test_xen_fails_on_its_first_fault_line_before_the_panic():
    decision, _ = judge("xen-pv-truncated.log")
    assert (decision.status, decision.kind) == (FAIL, "xen-fault")
    assert decision.reason.startswith("(XEN) Early fatal page fault at e008:ffff82d0404022c8")


@pytest.mark.parametrize("log, reason", [
    # Xen's head.S when the multiboot2 tag loop misses its end (GRUB on SeaBIOS)
    ("xen-mb2-bios-not-multiboot.log", "ERR: Not a Multiboot bootloader!"),
    # xen.efi refusing where OVMF loaded it, then OVMF falls back to its menu
    ("xen-efi-load-address.log", "Xen must be loaded at a 2Mb boundary."),
    # a dom0 Xen cannot build: the panic's first line decides
    ("xen-mb1-dom0-panic.log", "(XEN) Panic on CPU 0:"),
])
def test_xen_failures_captured_from_real_boots_fail_on_their_line(log, reason):
    decision, _ = judge(log)
    assert (decision.status, decision.reason) == (FAIL, reason)


@pytest.mark.parametrize("line", [
    'BdsDxe: starting Boot0000 "UiApp" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(462CAA21)',
    "(XEN) FATAL TRAP: vec 6, #UD[0000]",
    "(XEN) Assertion 'pvh_boot' failed at arch/x86/guest/xen/pvh-boot.c:110",
    "(XEN) Xen BUG at common/page_alloc.c:1234",
    "(XEN) Xen WARN at arch/x86/smpboot.c:321",
    "(XEN) FATAL PAGE FAULT",
    "(d1) (XEN) Panic on CPU 0:",
    "ERR: Xen must be loaded at a 2Mb boundary!",
    "(XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting.",
])
def test_xen_and_firmware_failure_lines(line):
    assert PATTERNS.failure(line, bare=False), line


def test_hypervisor_warning_is_not_a_kernel_warning():
    # Xen prints "(XEN) WARNING: PVH is an experimental mode"; the xen-pvh entry's success line follows.
    decision, _ = judge("xen-pvh-stall.log", success=re.compile("Booting kernel on Xen PVH"))
    assert decision.status == PASS
    assert "Booting kernel on Xen PVH" in decision.reason


@pytest.mark.parametrize("line", [
    "[    1.234567] WARNING: CPU: 0 PID: 1 at arch/x86/kernel/setup.c:42 setup_arch+0x1/0x2",
    "[    0.000000] BUG: unable to handle page fault for address: ffffffffff5fd000",
    "[    2.000000] Oops: 0002 [#1] PREEMPT SMP NOPTI",
    "[    2.000000] general protection fault, probably for non-canonical address 0xdead: 0000 [#1]",
    "[    0.100000] PANIC: early exception 0x0e IP 10:ffffffff81000000 error 0 cr2 0x0",
    "\x1b[2J\x1b[01;01HKernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
    "(XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting.",
    "XZ-compressed data is corrupt -- System halted",
])
def test_failure_lines(line):
    console = Console(ENTRIES["bios"].success_pattern(NONCE), PATTERNS)
    assert console.feed(line).status == FAIL


@pytest.mark.parametrize("line", [
    "(XEN) WARNING: PVH is an experimental mode with limited functionality",
    "[    0.500000] ACPI BIOS Warning (bug): Incorrect checksum in table [BGRT]",
    "userspace says the word BUG: in passing",
    "[    0.000000] Command line: console=ttyS0 panic=-1",
    "[    5.000001] traps: init[1] general protection fault ip:401000 sp:7ffd0 error:0 in init[401000+1000]",
    # kernel messages that begin as a report does, and are none: only a report's own shape counts
    "[    6.000000] WARNING: the mand mount option is being deprecated and will be removed in v5.15!",
    "[    6.000000][    T1] WARNING: fbcon: Driver 'vkmsdrmfb' missed to adjust virtual screen size (0x0 vs. 64x48)",
    "[    6.000000] BUG: Address ::1 on device lo is missing its host route.",
    "[    6.000000] INFO: NMI handler (perf_event_nmi_handler) took too long to run: 1.234 msecs",
    "[    6.000000] INFO: lockdep is turned off.",
    "[    6.000000] sshd[80]: WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
    "Mar  5 16:30:12 host kern.warn kernel: [    6.000000] WARNING: `iw' uses wireless extensions which will stop",
])
def test_harmless_lines(line):
    console = Console(ENTRIES["bios"].success_pattern(NONCE), PATTERNS)
    assert console.feed(line) is None


def test_failure_before_the_marker_wins_and_escapes_are_cleaned():
    console = Console(ENTRIES["bios"].success_pattern(NONCE), PATTERNS)
    assert console.feed("\x1b[0m[    1.0] Oops: 0000 [#1] SMP\r").reason == "[    1.0] Oops: 0000 [#1] SMP"


def test_qemu_exits():
    console = Console(ENTRIES["bios"].success_pattern(NONCE), PATTERNS)
    console.feed("[    0.1] Linux version 6.1")
    refused = console.exited(1, "qemu-system-x86_64: Error loading uncompressed kernel without PVH ELF Note\n")
    assert refused.status == FAIL and "PVH ELF Note" in refused.reason
    lab = console.exited(1, "qemu-system-x86_64: could not load PC BIOS 'bios-256k.bin'\n")
    assert lab.status == ERROR and "bios-256k.bin" in lab.reason
    reset = console.exited(0, "")
    assert reset.status == FAIL and "Linux version 6.1" in reset.reason


def test_limits_name_the_last_line():
    console = Console(ENTRIES["bios"].success_pattern(NONCE), PATTERNS)
    console.feed("Decompressing Linux... ")
    assert console.silent(5).status == TIMEOUT
    assert "5 s" in console.silent(5).reason and "Decompressing Linux" in console.silent(5).reason
    assert console.overran(180).status == TIMEOUT


def test_last_words_without_a_newline_decide_as_soon_as_the_console_pauses(tmp_path):
    """Xen's head.S writes "ERR: ..." with no newline, then halts: the boot fails within seconds,
    not at the silence limit."""
    import time

    from bot.boots import qemu
    from bot.sandbox import Sandbox
    fake = tmp_path / "fake-qemu"
    fake.write_text("#!/bin/sh\nprintf 'Booting bootbot\\nERR: Not a Multiboot bootloader!'\nexec sleep 600\n")
    fake.chmod(0o755)
    started = time.monotonic()
    decision = qemu.run([str(fake)], tmp_path, tmp_path / "console.log", Console(re.compile("never"), PATTERNS),
                        120, 60, Sandbox(64000), [])
    assert (decision.status, decision.reason) == (FAIL, "ERR: Not a Multiboot bootloader!")
    assert time.monotonic() - started < 10



@pytest.mark.parametrize("after", ["yes ''", "yes '' | tr -d '\\n'", "while :; do echo; sleep 0.2; done"],
                         ids=["blank-lines", "a-line-without-end", "a-trickle-of-blank-lines"])
def test_a_console_that_keeps_talking_after_a_failure_is_cut(tmp_path, after, monkeypatch):
    """After a failure's line the report is read on, within a bound of time and bytes: a machine
    that prints blank lines, one line that never ends, or a trickle too slow for the byte bound
    and too fast to pause, does not hold the boot."""
    import time

    from bot.boots import qemu
    from bot.sandbox import Sandbox
    monkeypatch.setattr(qemu, "BLOCK_SECONDS", 3.0)
    fake = tmp_path / "fake-qemu"
    fake.write_text(f"#!/bin/sh\necho '[    1.0] BUG: scheduling while atomic: swapper/0/1/0x00000002'\n{after}\n")
    fake.chmod(0o755)
    started = time.monotonic()
    decision = qemu.run([str(fake)], tmp_path, tmp_path / "console.log", Console(re.compile("never"), PATTERNS),
                        120, 60, Sandbox(64000), [])
    assert decision.status == FAIL and decision.kind == "bug"
    assert time.monotonic() - started < qemu.BLOCK_SECONDS + 5
    assert (tmp_path / "console.log").stat().st_size < 2 * qemu.BLOCK_BYTES + 65536


BANNER = "[    0.000000] Linux version 6.1.0 (bootbot@bootbot) #1 SMP"


@pytest.mark.parametrize("line, kind", [
    ("[   39.549363][ T5855] general protection fault: 0000 [#1] PREEMPT SMP KASAN", "oops"),
    ("[  599.875361][    C0] rcu: INFO: rcu_sched self-detected stall on CPU", "rcu-stall"),
    ("isob2 login: [  709.689951] INFO: rcu_sched detected stalls on CPUs/tasks:", "rcu-stall"),
    ("[   12.000000] Oops: Oops: 0000 [#1] SMP NOPTI", "oops"),
    ("[    3.200000] WARNING: kernel/sched/core.c:8511 at sched_init+0x20/0x410, CPU#0: swapper/0", "warning"),
    ("[    3.200000] WARNING: possible circular locking dependency detected", "lockdep"),
    ("[    2.000000] BUG: scheduling while atomic: swapper/0/1/0x00000002", "bug"),
    ("[    2.000000] UBSAN: shift-out-of-bounds in init/main.c:1488:3", "sanitizer"),
    ("[    2.000000] divide error: 0000 [#1] PREEMPT SMP NOPTI", "oops"),
    ("[   30.000000] INFO: task swapper/0:1 blocked for more than 2 seconds.", "hung-task"),
    ("[   22.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]", "lockup"),
    ("[    5.000000] PANIC: double fault, error_code: 0x0", "oops"),
    ("l1: [    0.000000] Kernel panic - not syncing: VFS: Unable to mount root fs", "panic"),
    # WARN's first line in every kernel's words: 2.6, 3.x, 6.19
    ("[    3.200000] WARNING: at kernel/sched/core.c:8511 sched_init+0x20/0x410()", "warning"),
    ("[    3.200000] WARNING: CPU: 0 PID: 1 at kernel/sched/core.c:8511 sched_init+0x20/0x410()", "warning"),
    ("[    3.200000] WARNING: at sched_init+0x20/0x410, CPU#0: swapper/0/1", "warning"),
    # oopses of older kernels, arm64 and arm
    ("[    4.000000] BUG: unable to handle kernel paging request at ffff880000000000", "oops"),
    ("[    4.000000] BUG: TASK stack guard page was hit at 00000000a1b2c3d4 (stack is 0000000011..0000000022)", "oops"),
    ("[    4.000000] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000", "oops"),
    ("[    4.000000] Unable to handle kernel access to user memory outside uaccess routines at virtual address "
     "0000000020000000", "oops"),
    ("[    4.000000] Internal error: Oops: 0000000096000004 [#1] PREEMPT SMP", "oops"),
    ("[    4.000000] Internal error: Oops - BUG: 00000000f2000800 [#1] SMP", "oops"),
    ("[    4.000000] Internal error: : 81b [#1] SMP ARM", "oops"),
    ("[    4.000000] Unhandled fault: page domain fault (0x01b) at 0x00000000", "oops"),
    ("Aug 29 09:51:01 host kernel: Unable to handle kernel paging request at virtual address f15e97cc", "oops"),
    ("[    4.000000] BUG kmalloc-64 (Not tainted): Object already free", "slab"),
    ("[    4.000000] INFO: Freed in kfree+0x1a/0x30 age=12 cpu=0 pid=1", "slab"),
    ("[    4.000000] BUG: KASan: out of bounds access in kmalloc_oob_right+0x1a/0x30 at addr ffff8800", "sanitizer"),
    ("[    4.000000] UBSAN: Undefined behaviour in lib/test.c:12:3", "sanitizer"),
    # lockdep, 4.14 and later, and before
    ("[    5.000000] WARNING: possible recursive locking detected", "lockdep"),
    ("[    5.000000] WARNING: bad unlock balance detected!", "lockdep"),
    ("[    5.000000] WARNING: kworker/0:1/12 still has locks held!", "lockdep"),
    ("[    5.000000] [ INFO: possible circular locking dependency detected ]", "lockdep"),
    ("[    5.000000] [ BUG: held lock freed! ]", "lockdep"),
    ("[    5.000000] [ INFO: suspicious RCU usage. ]", "lockdep"),
    ("[    5.000000] WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", "lockdep"),
    ("[    5.000000] BUG: MAX_LOCKDEP_KEYS too low!", "lockdep"),
    # leaks, hangs, file systems, reference counts
    ("[   70.000000] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)", "kmemleak"),
    ("[   70.000000] kmemleak: unreferenced object 0xffff88800a1b2c00 (size 64):", "kmemleak"),
    ("[  150.000000] INFO: task syz-executor.5:123 can't die for more than 143 seconds.", "hung-task"),
    ("[   30.000000] NMI watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [syz-executor:123]", "lockup"),
    ("[   30.000000] BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 31s!", "lockup"),
    ("[   30.000000] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580", "bug"),
    ("[   30.000000] VFS: Busy inodes after unmount of loop0. Self-destruct in 5 seconds.  Have a nice day...",
     "vfs"),
    ("[   30.000000] VFS: Close: file count is 0 (f_op=shmem_file_operations)", "vfs"),
    ("[   30.000000] unregister_netdevice: waiting for lo to become free. Usage count = 2", "refcount"),
])
def test_kernel_lines_count_after_printks_prefix_wherever_it_sits(line, kind):
    console = Console(re.compile("never"), PATTERNS)
    assert console.feed(BANNER) is None
    decision = console.feed(line)
    assert (decision.status, decision.kind) == (FAIL, kind), decision


def test_a_program_printing_warning_fails_nothing_once_the_kernel_shows_its_time():
    """The kernel prints "[   1.234567] " before each of its lines (CONFIG_PRINTK_TIME, which
    bootbot's fragment sets): a line without it, after a timed banner, is userspace's."""
    console = Console(re.compile("marker"), PATTERNS)
    for line in (BANNER, "WARNING: this line is userspace's", "BUG: so is this", "Kernel panic - not syncing: a joke"):
        assert console.feed(line) is None
    assert console.feed("marker").status == PASS
    untimed = Console(re.compile("marker"), PATTERNS)   # a kernel without times: nothing tells them apart
    assert untimed.feed("Linux version 6.1.0 (bootbot@bootbot) #1") is None
    assert untimed.feed("WARNING: CPU: 0 PID: 1 at init/main.c:1 kernel_init+0x1/0x2").status == FAIL


@pytest.mark.parametrize("named, kind", [
    ("[    1.000001] WARNING: CPU: 0 PID: 1 at init/main.c:1 kernel_init+0x1/0x2", "warning"),
    ("[    1.000001] kernel BUG at init/main.c:1!", "bug"),
    ("[    1.000001] refcount_t: addition on 0; use-after-free.", "refcount"),
])
def test_a_cut_here_line_fails_the_boot_and_the_report_s_first_failure_line_names_it(named, kind):
    """The kernel prints "cut here" before a WARN's or a BUG's first line, and before a WARN()'s
    own message: the boot fails on it, as a warning until a line of the report says more."""
    console = Console(re.compile("never"), PATTERNS)
    console.feed(BANNER)
    cut = "[    1.000000] ------------[ cut here ]------------"
    decision = console.feed(cut)
    assert (decision.status, decision.kind) == (FAIL, "warning")
    for line in ("[    1.000001] bootbot: a WARN()'s own message", named, cut):
        console.more(line)
    decision = console.with_block(decision)
    assert (decision.kind, decision.reason, decision.block[0]) == (kind, named, cut)
    unnamed = Console(re.compile("never"), PATTERNS)   # a WARN in words no pattern knows yet
    unnamed.feed(BANNER)
    decision = unnamed.feed(cut)
    unnamed.more("[    1.000001] WARNING: init/main.c:1 in a shape to come")
    decision = unnamed.with_block(decision)
    assert (decision.status, decision.reason, decision.kind) == (FAIL, cut, "warning")


def test_a_failure_keeps_its_report_up_to_its_end_line_or_the_bound():
    console = Console(re.compile("never"), PATTERNS)
    console.feed(BANNER)
    decision = console.feed("[    1.000000] WARNING: CPU: 0 PID: 1 at init/main.c:1 kernel_init+0x1/0x2")
    more = [console.more(line) for line in ("[    1.000001] Modules linked in:", "[    1.000002] Call Trace:",
                                            "[    1.000003] ---[ end trace 0000000000000000 ]---", "after")]
    assert more == [True, True, False, False] and decision.kind == "warning"
    assert console.with_block(decision).block[-1] == "[    1.000003] ---[ end trace 0000000000000000 ]---"
    endless = Console(re.compile("never"), PATTERNS)
    endless.feed("[    1.000000] BUG: scheduling while atomic: swapper/0/1/0x00000002")
    assert sum(endless.more(f"[    1.1] frame {n}") for n in range(100)) == 38   # 40 lines at most
