"""How the captured part of the console corpus (tests/data/console/captured/) was made: real boots
of the Linux tree with one failure injected into kernel_init(), each kind with printk's caller
field on and off (and the tree built for arm64, booted on QEMU's virt machine), and the stock
kernel with /inits of its own: a kernel line glued to userspace's, and a boot that only looks
like it failed. Run it again after a change of kernel or QEMU; review what it wrote, then label
it in tests/data/labels.toml.

    nice -n 10 .venv/bin/python tests/capture_consoles.py [--kinds warning,panic,...] [--callers plain,caller]
        [--arm64 arm64-null,...] [--stock glued,lookalike]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import trees  # noqa: E402

from bot import config as configuration  # noqa: E402
from bot import declarations, settings
from bot.boots import initramfs, runner  # noqa: E402
from bot.sandbox import Sandbox  # noqa: E402
from bot.trees import build, workspace  # noqa: E402

OUT = HERE / "data" / "console" / "captured"
ANCHOR = "\tkernel_init_freeable();\n"
HEADERS = "#include <linux/types.h>\n"   # init/main.c's first include: more go after it
# The kernel's debugging every kind needs, on top of bootbot's fragment.
DEBUG = ["CONFIG_BUG=y", "CONFIG_SMP=y", "CONFIG_KALLSYMS=y", "CONFIG_PROC_FS=y", "CONFIG_PROC_SYSCTL=y",
         "CONFIG_SOFTLOCKUP_DETECTOR=y", "CONFIG_DETECT_HUNG_TASK=y", "CONFIG_DEFAULT_HUNG_TASK_TIMEOUT=2",
         "CONFIG_UBSAN=y", "CONFIG_UBSAN_SHIFT=y"]
# Lock, sleep, slab and leak checking, networking (and Unix sockets, for syslogd): one kernel for
# the kinds that need them.
CHECKERS = ("CONFIG_DEBUG_KERNEL=y", "CONFIG_PROVE_LOCKING=y", "CONFIG_DEBUG_ATOMIC_SLEEP=y", "CONFIG_SYSFS=y",
            "CONFIG_SLUB=y", "# CONFIG_SLOB is not set", "CONFIG_SLUB_DEBUG=y", "CONFIG_DEBUG_FS=y",
            "CONFIG_DEBUG_KMEMLEAK=y", "CONFIG_NET=y", "CONFIG_UNIX=y")
# Quick detectors: the soft lockup watchdog (the hung task timeout is 2 s).
APPEND = "watchdog_thresh=1"
MARKER = '/bin/busybox echo "bootbot: userspace reached, nonce $bootbot_nonce"\n/bin/busybox poweroff -f\n'
# kmemleak reports objects at least 5 s old, when a scan finds them unchanged since the scan
# before: two scans asked for from userspace.
SCAN_INIT = """#!/bin/busybox sh
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t debugfs debugfs /sys/kernel/debug
/bin/busybox sleep 6
/bin/busybox echo scan > /sys/kernel/debug/kmemleak
/bin/busybox echo scan > /sys/kernel/debug/kmemleak
/bin/busybox cat /sys/kernel/debug/kmemleak
""" + MARKER
# A boot with no failure whose console looks like one: userspace's lines in the kernel's log
# (/dev/kmsg gives them printk's time), and every kernel line again through syslogd and klogd.
LOOKALIKE_INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /var/run /var/log
/bin/busybox mknod /dev/kmsg c 1 11
/bin/busybox syslogd -O /dev/console
/bin/busybox klogd
/bin/busybox echo "<4>sshd[80]: WARNING: /etc/ssh/moduli does not exist, using fixed modulus" > /dev/kmsg
/bin/busybox printf '<4>WARNING: `bootbot\\047 uses wireless extensions which will stop working for Wi-Fi 7 hardware; use nl80211\\n' > /dev/kmsg
/bin/busybox echo "<3>BUG: bootbot: a daemon's complaint, no kernel's" > /dev/kmsg
/bin/busybox echo "WARNING: userspace says so on the console; BUG: and INFO: too"
/bin/busybox sleep 3
""" + MARKER
# The stock kernel's own console: userspace's "WARNING:" (no failure), and a kernel panic line
# glued after userspace text left without a newline.
GLUED_INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox echo "WARNING: this line is userspace's"
/bin/busybox printf "userspace, mid-line: "
/bin/busybox echo c > /proc/sysrq-trigger
"""

STOCK = {"glued": GLUED_INIT, "lookalike": LOOKALIKE_INIT}   # the stock kernel's consoles, by their /init


@dataclass(frozen=True)
class Injection:
    code: str                        # what kernel_init() does right after its initcalls
    config: tuple[str, ...] = ()     # the kernel's checking it needs, on top of DEBUG
    append: str = APPEND             # on the kernel's command line
    init: str | None = None          # an /init of its own, instead of bootbot's
    headers: str = ""                # included by init/main.c for `code`


INJECTED = {
    "warning": Injection('WARN(1, "bootbot: a test warning\\n");'),
    "bug": Injection("BUG();"),
    "oops": Injection("*(volatile int *)0 = 0;"),
    "divide-error": Injection('asm volatile("xor %%ecx, %%ecx; div %%ecx" : : : "eax", "ecx", "edx");'),
    "panic": Injection('panic("bootbot: a test panic");'),
    # a soft lockup (an RCU stall needs a grace period waiting, which one spinning CPU never starts)
    "lockup": Injection("preempt_disable(); for (;;) cpu_relax();"),
    "hung-task": Injection("for (;;) schedule_timeout_uninterruptible(MAX_SCHEDULE_TIMEOUT);"),
    "ubsan": Injection('{ volatile int shift = 40; pr_info("%d\\n", 1 << shift); }'),
    # the two orders of a pair of mutexes: a deadlock waiting for a second thread
    "lockdep-deadlock": Injection("{ static DEFINE_MUTEX(a); static DEFINE_MUTEX(b); mutex_lock(&a); mutex_lock(&b); "
                                  "mutex_unlock(&b); mutex_unlock(&a); mutex_lock(&b); mutex_lock(&a); "
                                  "mutex_unlock(&a); mutex_unlock(&b); }", CHECKERS),
    "lockdep-unlock": Injection("{ static DEFINE_MUTEX(m); mutex_unlock(&m); }", CHECKERS),
    "lockdep-rcu": Injection('{ static int __rcu *p; pr_info("%px\\n", rcu_dereference(p)); }', CHECKERS),
    # init's first return to user space, with a mutex still held
    "lockdep-user-return": Injection("{ static DEFINE_MUTEX(m); mutex_lock(&m); }", CHECKERS),
    "sleep-in-atomic": Injection("{ static DEFINE_MUTEX(m); preempt_disable(); mutex_lock(&m); mutex_unlock(&m); "
                                 "preempt_enable(); }", CHECKERS),
    "slab-double-free": Injection("{ void *p = kmalloc(64, GFP_KERNEL); kfree(p); kfree(p); }", CHECKERS,
                                  f"{APPEND} slub_debug=F"),
    # sixteen objects no pointer leads to (the last one's may linger in a register)
    "kmemleak": Injection("{ static void * volatile sink; int i; for (i = 0; i < 16; i++) "
                          "sink = kmalloc(128, GFP_KERNEL); sink = NULL; }", CHECKERS, init=SCAN_INIT),
    "refcount": Injection("{ refcount_t r = REFCOUNT_INIT(0); refcount_inc(&r); }", CHECKERS),
    # a device that keeps a reference when it is unregistered
    "netdev-refcount": Injection("{ static const struct net_device_ops ops; struct net_device *dev = "
                                 'alloc_netdev(0, "bootbot%d", NET_NAME_UNKNOWN, ether_setup); dev->netdev_ops = &ops; '
                                 "register_netdev(dev); dev_hold(dev); unregister_netdev(dev); }",
                                 CHECKERS, headers="#include <linux/netdevice.h>\n#include <linux/etherdevice.h>\n"),
    "vfs-close": Injection('{ struct file *f = filp_open("/init", O_RDONLY, 0); '
                           "atomic_long_set(&f->f_count, 0); filp_close(f, NULL); }", CHECKERS),
    # no failure at all: kernel messages that begin as reports do
    "lookalike": Injection(
        'pr_warn("WARNING: the mand mount option is being deprecated and will be removed in v5.15!\\n"); '
        "pr_warn(\"WARNING: fbcon: Driver 'bootbotdrmfb' missed to adjust virtual screen size "
        "(0x0 vs. 1024x768)\\n\"); "
        'pr_warn("BUG: Address ::1 on device lo is missing its host route.\\n"); '
        'pr_info("INFO: recovery required on readonly filesystem.\\n"); '
        'pr_info("INFO: NMI handler (bootbot_nmi) took too long to run: 1.234 msecs\\n");',
        CHECKERS, init=LOOKALIKE_INIT),
}


# arm64's own oops lines, from the same tree built for QEMU's virt machine: the code runs in
# kernel_init_freeable() after its initcalls, before it looks for an /init (an initramfs with
# an /init that never runs keeps it from mounting a root), so nothing but the kernel is needed.
ARM64 = {"arm64-null": "*(volatile int *)0 = 0;",
         "arm64-paging": "*(volatile int *)0xffff000012345678UL = 0;",   # the linear map's hole below RAM
         "arm64-bug": "BUG();",
         "arm64-undefined": 'asm volatile("udf #0");'}   # die() says it first
ARM64_ANCHOR = "\tdo_basic_setup();\n"
ARM64_CONFIG = ["CONFIG_PRINTK=y", "CONFIG_PRINTK_TIME=y", "CONFIG_TTY=y", "CONFIG_SERIAL_AMBA_PL011=y",
                "CONFIG_SERIAL_AMBA_PL011_CONSOLE=y", "CONFIG_BLK_DEV_INITRD=y", "CONFIG_BUG=y",
                "CONFIG_KALLSYMS=y", "CONFIG_SMP=y"]
ARM64_MAKE = ["make", "ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-", "KBUILD_BUILD_USER=bootbot",
              "KBUILD_BUILD_HOST=bootbot"]
ARM64_QEMU = ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57", "-m", "256", "-nodefaults",
              "-display", "none", "-serial", "stdio", "-no-reboot", "-append", "console=ttyAMA0 panic=-1"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(INJECTED), help="the kinds to capture (all of them by default)")
    parser.add_argument("--callers", default="plain,caller",
                        help="printk's caller field off (plain), on (caller), or both (the default)")
    parser.add_argument("--stock", default=",".join(STOCK),
                        help="the stock kernel's consoles to capture (all by default)")
    parser.add_argument("--arm64", default=",".join(ARM64),
                        help="the arm64 kinds to capture (all by default; "
                             "needs gcc-aarch64-linux-gnu and qemu-system-arm)")
    args = parser.parse_args(argv)
    kinds = sorted((k for k in args.kinds.split(",") if k), key=lambda k: INJECTED[k].config)   # fewer rebuilds
    OUT.mkdir(parents=True, exist_ok=True)
    config = configuration.load()
    with tempfile.TemporaryDirectory(prefix="capture-") as scratch:
        scratch = Path(scratch)
        for caller in (name == "caller" for name in args.callers.split(",")):
            for kind in kinds:
                capture(config, scratch, kind, caller)
        for kind in (k for k in args.arm64.split(",") if k):
            arm64(scratch, kind)
        for name in (n for n in args.stock.split(",") if n):
            stock(config, scratch, name, STOCK[name])
    return 0


def checks_with(config, folder: Path, fragment: list[str], init: str | None) -> declarations.Declarations:
    """bootbot's declarations copied into `folder`, with more lines in the Linux fragment and
    another /init in the initramfs."""
    shutil.copytree(config.path("checks", "dir"), folder)
    linux_config = folder / "trees" / "linux.config"
    linux_config.write_text(linux_config.read_text() + "".join(f"{line}\n" for line in fragment))
    if init:
        files_toml = folder / "files.toml"
        text = files_toml.read_text()
        start = text.index('init = """', text.index("[initrd]"))
        end = text.index('"""', start + len('init = """')) + 3
        # a literal string: a script's backslashes are its own
        files_toml.write_text(text[:start] + f"init = '''{init}'''" + text[end:])
    return declarations.load(folder)


def capture(config, scratch: Path, kind: str, caller: bool) -> None:
    injected, name = INJECTED[kind], f"{kind}-{'caller' if caller else 'plain'}"
    caller_line = "CONFIG_PRINTK_CALLER=y" if caller else "# CONFIG_PRINTK_CALLER is not set"
    declared = checks_with(config, scratch / f"checks-{name}", [*DEBUG, *injected.config, caller_line], injected.init)
    tree, lab = declared.trees["linux"], settings.lab(config, "tcg")
    limits = settings.sandbox_limits(config)
    with workspace.acquire(trees.linux(), scratch / f"workspaces-{caller}", 1) as ws:
        ws.checkout("master")
        main_c = ws.worktree / "init" / "main.c"
        main_c.write_text(main_c.read_text().replace(HEADERS, HEADERS + injected.headers, 1)
                          .replace(ANCHOR, f"{ANCHOR}\t{injected.code}\n", 1))
        built = build.build(tree, ws.worktree, ws.build, 2, Sandbox(lab.sandbox.uid + 1, limits), print)
        if not built.ok:
            raise SystemExit(f"{kind}: the build failed: {built.errors}")
        files = settings.files(built.artifacts, declared, lab, limits, cache=scratch / f"cache-{name}")
        [result] = runner.boot([tree.entries["pvh"]], files, lab, scratch / f"run-{name}",
                               patterns=declared.patterns, probe=None, append=injected.append,
                               limits={"pvh": (60, 20)})
        shutil.copyfile(scratch / f"run-{name}" / result.log, OUT / f"{name}.log")
        print(f"{name}.log: {result.status} ({result.kind}) {result.reason}")


def arm64(scratch: Path, kind: str) -> None:
    """Builds (incrementally after the first) and boots the tree for arm64 with ARM64[kind]."""
    with workspace.acquire(trees.linux(), scratch / "workspaces-arm64", 1) as ws:
        ws.checkout("master")
        main_c = ws.worktree / "init" / "main.c"
        main_c.write_text(main_c.read_text().replace(ARM64_ANCHOR, f"{ARM64_ANCHOR}\t{ARM64[kind]}\n", 1))
        make = [*ARM64_MAKE, f"O={ws.build}"]
        config, fragment = ws.build / ".config", scratch / "arm64.config"
        fragment.write_text("".join(f"{line}\n" for line in ARM64_CONFIG))
        if not config.exists():
            run([*make, "tinyconfig"], ws.worktree)
            run([str(ws.worktree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(ws.build), str(config),
                 str(fragment)], ws.build)
            run([*make, "olddefconfig"], ws.worktree)
            lost = set(ARM64_CONFIG) - set(config.read_text().splitlines())
            if lost:
                raise SystemExit(f"arm64: olddefconfig dropped {sorted(lost)}")
        run([*make, "-j2", "Image"], ws.worktree)
        initrd = scratch / "arm64-initrd"
        initramfs.build(initrd, "#!/bin/sh\n", {})
        # panic=-1 and -no-reboot: QEMU exits once the oops has killed init
        image = ws.build / "arch/arm64/boot/Image"
        booted = subprocess.run([*ARM64_QEMU, "-kernel", str(image), "-initrd", str(initrd)],
                                capture_output=True, timeout=300)
        (OUT / f"{kind}-plain.log").write_bytes(booted.stdout)
        print(f"{kind}-plain.log: {len(booted.stdout.splitlines())} lines, QEMU exit {booted.returncode}")


def run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def stock(config, scratch: Path, name: str, init: str) -> None:
    """A boot of the stock kernel (/vmlinuz) with its own /init, captured as `name`-stock.log."""
    declared = checks_with(config, scratch / f"checks-{name}", [], init)
    lab = settings.lab(config, "tcg")
    files = settings.files({"bzimage": Path("/vmlinuz").resolve()}, declared, lab, settings.sandbox_limits(config),
                           cache=scratch / f"cache-{name}")
    [result] = runner.boot([declared.trees["linux"].entries["pvh"]], files, lab, scratch / f"run-{name}",
                           patterns=declared.patterns, probe=None)
    shutil.copyfile(scratch / f"run-{name}" / result.log, OUT / f"{name}-stock.log")
    print(f"{name}-stock.log: {result.status} ({result.kind}) {result.reason}")


if __name__ == "__main__":
    sys.exit(main())
