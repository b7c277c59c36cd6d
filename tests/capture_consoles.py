"""How the captured part of the console corpus (tests/data/console/captured/) was made: real boots
of the Linux tree with one failure injected into kernel_init(), each kind with printk's caller
field on and off, and the stock kernel's own /init glued to a kernel line. Run it again after a
change of kernel or QEMU; review what it wrote, then label it in tests/data/labels.toml.

    .venv/bin/python tests/capture_consoles.py [--kinds warning,panic,...]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import trees  # noqa: E402
from bot import config as configuration, declarations, settings  # noqa: E402
from bot.boots import runner  # noqa: E402
from bot.sandbox import Sandbox  # noqa: E402
from bot.trees import build, workspace  # noqa: E402

OUT = HERE / "data" / "console" / "captured"
ANCHOR = "\tkernel_init_freeable();\n"
# What kernel_init() does right after its initcalls, for each kind of failure.
INJECTED = {
    "warning": 'WARN(1, "bootbot: a test warning\\n");',
    "bug": "BUG();",
    "oops": "*(volatile int *)0 = 0;",
    "divide-error": 'asm volatile("xor %%ecx, %%ecx; div %%ecx" : : : "eax", "ecx", "edx");',
    "panic": 'panic("bootbot: a test panic");',
    # a soft lockup (an RCU stall needs a grace period waiting, which one spinning CPU never starts)
    "lockup": "preempt_disable(); for (;;) cpu_relax();",
    "hung-task": "for (;;) schedule_timeout_uninterruptible(MAX_SCHEDULE_TIMEOUT);",
    "ubsan": '{ volatile int shift = 40; pr_info("%d\\n", 1 << shift); }',
}
# The kernel's debugging the kinds need, on top of bootbot's fragment.
DEBUG = ["CONFIG_BUG=y", "CONFIG_SMP=y", "CONFIG_KALLSYMS=y", "CONFIG_PROC_FS=y", "CONFIG_PROC_SYSCTL=y",
         "CONFIG_SOFTLOCKUP_DETECTOR=y", "CONFIG_DETECT_HUNG_TASK=y", "CONFIG_DEFAULT_HUNG_TASK_TIMEOUT=2",
         "CONFIG_UBSAN=y", "CONFIG_UBSAN_SHIFT=y"]
# Quick detectors: the soft lockup watchdog (the hung task timeout is 2 s).
APPEND = "watchdog_thresh=1"
# The stock kernel's own console: userspace's "WARNING:" (no failure), and a kernel panic line
# glued after userspace text left without a newline.
GLUED_INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox echo "WARNING: this line is userspace's"
/bin/busybox printf "userspace, mid-line: "
/bin/busybox echo c > /proc/sysrq-trigger
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(INJECTED), help="the kinds to capture (all of them by default)")
    parser.add_argument("--no-glued", action="store_true", help="leave out the stock kernel's glued console")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    OUT.mkdir(parents=True, exist_ok=True)
    config = configuration.load()
    with tempfile.TemporaryDirectory(prefix="capture-") as scratch:
        scratch = Path(scratch)
        for caller in (False, True):
            checks = scratch / f"checks-{caller}"
            shutil.copytree(config.path("checks", "dir"), checks)
            fragment = checks / "trees" / "linux.config"
            caller_line = "CONFIG_PRINTK_CALLER=y" if caller else "# CONFIG_PRINTK_CALLER is not set"
            fragment.write_text(fragment.read_text() + "\n".join([*DEBUG, caller_line]) + "\n")
            declared = declarations.load(checks)
            for kind in kinds:
                capture(declared, config, scratch, kind, caller)
        if not args.no_glued:
            glued(config, scratch)
    return 0


def capture(declared, config, scratch: Path, kind: str, caller: bool) -> None:
    tree, lab = declared.trees["linux"], settings.lab(config, "tcg")
    limits = settings.sandbox_limits(config)
    with workspace.acquire(trees.linux(), scratch / f"workspaces-{caller}", 1) as ws:
        ws.checkout("master")
        main_c = ws.worktree / "init" / "main.c"
        main_c.write_text(main_c.read_text().replace(ANCHOR, f"{ANCHOR}\t{INJECTED[kind]}\n", 1))
        built = build.build(tree, ws.worktree, ws.build, 2, Sandbox(lab.sandbox.uid + 1, limits), print)
        if not built.ok:
            raise SystemExit(f"{kind}: the build failed: {built.errors}")
        files = settings.files(built.artifacts, declared, lab, limits, cache=scratch / "cache")
        [result] = runner.boot([tree.entries["pvh"]], files, lab, scratch / f"run-{kind}-{caller}",
                               patterns=declared.patterns, probe=None,
                               append=APPEND,
                               limits={"pvh": (60, 20)})
        name = f"{kind}-{'caller' if caller else 'plain'}.log"
        shutil.copyfile(scratch / f"run-{kind}-{caller}" / result.log, OUT / name)
        print(f"{name}: {result.status} ({result.kind}) {result.reason}")


def glued(config, scratch: Path) -> None:
    checks = scratch / "checks-glued"
    shutil.copytree(config.path("checks", "dir"), checks)
    files_toml = checks / "files.toml"
    text = files_toml.read_text()
    start = text.index('init = """', text.index("[initrd]"))
    end = text.index('"""', start + len('init = """')) + 3
    files_toml.write_text(text[:start] + f'init = """{GLUED_INIT}"""' + text[end:])
    declared = declarations.load(checks)
    lab = settings.lab(config, "tcg")
    files = settings.files({"bzimage": Path("/vmlinuz").resolve()}, declared, lab, settings.sandbox_limits(config),
                           cache=scratch / "cache-glued")
    [result] = runner.boot([declared.trees["linux"].entries["pvh"]], files, lab, scratch / "run-glued",
                           patterns=declared.patterns, probe=None)
    shutil.copyfile(scratch / "run-glued" / result.log, OUT / "glued-stock.log")
    print(f"glued-stock.log: {result.status} ({result.kind}) {result.reason}")


if __name__ == "__main__":
    sys.exit(main())
