"""Running one QEMU process and watching its serial console until the boot is decided."""
from __future__ import annotations

import os
import select
import selectors
import shutil
import subprocess
import time
from pathlib import Path

from bot.boots.console import Console, Decision
from bot.boots.diagnostics import Diagnostics
from bot.sandbox import Sandbox, stop
from bot.words import ERROR, FAIL, LabError

_STDERR_KEEP = 8192   # QEMU's complaints are short; a flood of them is cut, not buffered
TAIL_PAUSE = 1.0      # seconds of quiet after which an unfinished last line is judged
BLOCK_SECONDS = 10.0  # to read a failure's report at most: a console that keeps talking is cut
BLOCK_BYTES = 65536   # of a failure's report at most: a line that never ends is cut


def run(command: list[str], cwd: Path, log: Path, console: Console, timeout: float, silence: float,
        sandbox: Sandbox, readable: list[Path], exceptions: bool = False) -> Decision:
    """Runs QEMU with the serial console on its stdout, writes every console byte to `log`,
    and stops QEMU the moment `console` decides or a limit runs out, leaving QEMU's diagnostics
    in `cwd` (its exception log when `exceptions`). The kernel is the series' work: QEMU runs
    confined, seeing of the host only `readable` and its run folder `cwd`."""
    binary = shutil.which(command[0])
    if binary is None:
        return Decision(ERROR, f"cannot start {command[0]}: no such program")
    diagnostics = Diagnostics(cwd, exceptions)
    try:
        # by its full path: the sandbox's PATH is the system's, and a QEMU elsewhere is bound in
        confined = sandbox.confine([binary, *command[1:], *diagnostics.args()], cwd=cwd, readable=[binary, *readable],
                                   writable=[cwd], devices=_devices(command))
    except LabError as e:
        return Decision(ERROR, str(e))
    with diagnostics:
        try:
            qemu = subprocess.Popen(confined, cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            return Decision(ERROR, f"cannot start {command[0]}: {e.strerror}")
        diagnostics.watch(qemu)
        try:
            with log.open("wb") as out:
                return _read_console(qemu, out, console, timeout, silence, diagnostics)
        finally:
            stop(qemu)


def _read_console(qemu: subprocess.Popen, out, console: Console, timeout: float, silence: float,
                  diagnostics: Diagnostics) -> Decision:
    decision, rest = _first_decision(qemu, out, console, timeout, silence, diagnostics)
    if decision.status == FAIL and console.failed:
        _read_block(qemu, out, console, rest)
        return console.with_block(decision)
    return decision


def _first_decision(qemu: subprocess.Popen, out, console: Console, timeout: float,
                    silence: float, diagnostics: Diagnostics) -> tuple[Decision, bytes]:
    """The decision, and what was read after the line that made it."""
    started = last_output = time.monotonic()
    pending, stderr, tail_judged = b"", b"", True
    assert qemu.stdout is not None and qemu.stderr is not None   # pipes: Popen(stdout=PIPE, stderr=PIPE)
    with selectors.DefaultSelector() as selector:
        selector.register(qemu.stdout, selectors.EVENT_READ)
        selector.register(qemu.stderr, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if now - started >= timeout:
                return _decide_tail(console, pending) or console.overran(timeout), b""
            if now - last_output >= silence:
                decision = _decide_tail(console, pending)
                if not decision:
                    diagnostics.take_registers()   # where it hangs, before it is stopped
                return decision or console.silent(silence), b""
            if not tail_judged and now - last_output >= TAIL_PAUSE:
                # Some last words end without a newline, then the machine halts (Xen's head.S
                # "ERR: ...", the decompressor's "-- System halted"): judge them once it pauses.
                decision, tail_judged = _decide_tail(console, pending), True
                if decision:
                    return decision, b""
            wait = min(timeout - (now - started), silence - (now - last_output),
                       TAIL_PAUSE if not tail_judged else silence)
            for key, _ in selector.select(wait):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.fileobj is qemu.stderr:
                    stderr = (stderr + chunk)[:_STDERR_KEEP]
                else:
                    out.write(chunk)
                    last_output = time.monotonic()
                    *lines, pending = (pending + chunk).split(b"\n")
                    tail_judged = not pending
                    for n, line in enumerate(lines):
                        decision = console.feed(line.decode("utf-8", "replace"))
                        if decision:
                            return decision, b"\n".join([*lines[n + 1:], pending])
    decision = _decide_tail(console, pending)
    return decision or console.exited(qemu.wait(), stderr.decode("utf-8", "replace"), diagnostics.stopped), b""


def _read_block(qemu: subprocess.Popen, out, console: Console, rest: bytes) -> None:
    """Reads on after a failure's line, for its report: until the report ends, BLOCK_LINES, the
    console pauses (the machine has stopped saying anything useful), or BLOCK_SECONDS or
    BLOCK_BYTES run out (it keeps saying something useless: blank lines, a line without end)."""
    deadline, pending, chunk, read = time.monotonic() + BLOCK_SECONDS, b"", rest, 0
    assert qemu.stdout is not None
    while True:
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if not console.more(line.decode("utf-8", "replace")):
                return
        left = deadline - time.monotonic()
        ready = left > 0 and read < BLOCK_BYTES and select.select([qemu.stdout], [], [], min(left, TAIL_PAUSE))[0]
        chunk = os.read(qemu.stdout.fileno(), 65536) if ready else b""
        if not chunk:
            console.more(pending[:BLOCK_BYTES].decode("utf-8", "replace"))
            return
        read += len(chunk)
        out.write(chunk)


def _devices(command: list[str]) -> list[str]:
    accel = command[command.index("-accel") + 1] if "-accel" in command else "tcg"
    return ["/dev/kvm"] if accel == "kvm" else []


def _decide_tail(console: Console, pending: bytes) -> Decision | None:
    # The decompressor's "-- System halted" ends without a newline: judge the unfinished line too.
    return console.feed(pending.decode("utf-8", "replace")) if pending else None
