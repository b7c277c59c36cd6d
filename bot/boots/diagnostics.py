"""QEMU's own view of a boot whose console cannot explain its end, kept as plain files in the run
folder: the vCPU's registers when the machine stopped (a triple fault, a power-off) or the
console fell silent, and, when asked, QEMU's log of the guest's exceptions (-d int,cpu_reset),
of which only the last part is kept: under Xen it logs every hypercall, megabytes a boot.

The registers come through QMP, on a socket in the run folder. QEMU is told to pause, not exit,
when the guest shuts down (with -no-reboot a triple fault is a shutdown too), so that its
registers are still there to read; then it is told to quit, and ends as it would have."""
from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

QMP, REGISTERS, INTERRUPTS = "qmp.sock", "registers", "interrupts.log"
_FIFO = "interrupts.fifo"
KEEP_BYTES = 256 * 1024   # of the exception log: a fault chain and its register dumps take a few KB
ANSWER_SECONDS = 3.0      # for QEMU to answer one QMP command
CONNECT_SECONDS = 10.0    # for QEMU to open its QMP socket, from its start
HUNG = "hung"             # what REGISTERS says they were taken for when the console fell silent


class Diagnostics:
    def __init__(self, folder: Path, exceptions: bool):
        self.folder, self.exceptions = folder, exceptions
        self.stopped = ""   # why the guest stopped, as QMP's SHUTDOWN event says: guest-reset ...
        self._done = threading.Event()
        self._wanted = threading.Event()   # registers asked for, by the console's reader
        self._answered = threading.Event()
        self._tail = bytearray()
        self._threads: list[threading.Thread] = []
        self._qmp: _Qmp | None = None   # while connected

    def args(self) -> list[str]:
        args = ["-qmp", f"unix:{QMP},server=on,wait=off", "-action", "shutdown=pause"]
        return args + ["-d", "int,cpu_reset", "-D", _FIFO] if self.exceptions else args

    def __enter__(self) -> Diagnostics:
        if self.exceptions:
            # A FIFO read as QEMU writes, so that the log on disk stays bounded; opened for
            # writing too, so that it never reads as ended before QEMU opens it.
            os.mkfifo(self.folder / _FIFO)
            os.chmod(self.folder / _FIFO, 0o666)   # QEMU runs as the sandbox's uid
            fd = os.open(self.folder / _FIFO, os.O_RDWR | os.O_NONBLOCK)
            self._threads.append(threading.Thread(target=self._drain, args=(fd,), daemon=True))
            self._threads[-1].start()
        return self

    def watch(self, qemu: subprocess.Popen) -> None:
        """Follows the started `qemu` through QMP, in a thread."""
        self._threads.append(threading.Thread(target=self._follow, args=(qemu,), daemon=True))
        self._threads[-1].start()

    def take_registers(self) -> None:
        """Has the registers of the running machine written to REGISTERS, waiting for them a
        bounded time: the boot is about to be stopped for its silence."""
        self._wanted.set()
        self._answered.wait(ANSWER_SECONDS)

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._qmp:   # wakes the thread waiting for an event now, not at its next timeout
            self._qmp.close()
        for thread in self._threads:
            thread.join()
        if self.exceptions:
            (self.folder / INTERRUPTS).write_bytes(self._tail)
            (self.folder / _FIFO).unlink()
        (self.folder / QMP).unlink(missing_ok=True)

    def _follow(self, qemu: subprocess.Popen) -> None:
        try:
            qmp = self._qmp = _Qmp.connect(self.folder, qemu, self._done)
            if qmp is None:
                return
            with qmp:
                while not self._done.is_set():
                    if self._wanted.is_set():
                        self._write_registers(qmp, HUNG)
                        return
                    event = qmp.event()
                    if event.get("event") == "SHUTDOWN":
                        self.stopped = event.get("data", {}).get("reason", "shutdown")
                        self._write_registers(qmp, self.stopped)
                        qmp.command({"execute": "quit"})
                        return
        except EOFError:   # QEMU went away
            pass
        finally:
            self._answered.set()   # nobody waits for registers that cannot come

    def _write_registers(self, qmp: _Qmp, when: str) -> None:
        answer = qmp.command({"execute": "human-monitor-command", "arguments": {"command-line": "info registers"}})
        if isinstance(answer, str):
            (self.folder / REGISTERS).write_text(f"when: {when}\n" + answer.replace("\r", ""))

    def _drain(self, fd: int) -> None:
        try:
            while True:
                ready = select.select([fd], [], [], 0.05)[0]
                chunk = _read(fd) if ready else b""
                if chunk:
                    self._tail += chunk
                    if len(self._tail) > 2 * KEEP_BYTES:
                        del self._tail[:-KEEP_BYTES]
                elif self._done.is_set():   # QEMU is gone and all it wrote is read
                    del self._tail[:-KEEP_BYTES]
                    return
        finally:
            os.close(fd)


class _Qmp:
    """One QMP connection: commands and their answers, events between them."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buffer = sock, b""
        self.events: list[dict] = []

    @classmethod
    def connect(cls, folder: Path, qemu: subprocess.Popen, done: threading.Event) -> _Qmp | None:
        """Connected and past the greeting, or None when QEMU ends or never opens its socket."""
        deadline = time.monotonic() + CONNECT_SECONDS
        dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while time.monotonic() < deadline and qemu.poll() is None and not done.is_set():
                sock = socket.socket(socket.AF_UNIX)
                try:
                    # through the folder's descriptor: a socket's path is limited to 107 bytes
                    sock.connect(f"/proc/self/fd/{dirfd}/{QMP}")
                except (FileNotFoundError, ConnectionRefusedError):
                    sock.close()
                    done.wait(0.02)   # QEMU has not opened it yet: it does so before the guest runs
                    continue
                qmp = cls(sock)
                if qmp.command({"execute": "qmp_capabilities"}) is None:
                    sock.close()
                    return None
                return qmp
        finally:
            os.close(dirfd)
        return None

    def __enter__(self) -> _Qmp:
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def close(self) -> None:
        """Ends the connection for its reader too, at once."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def command(self, command: dict):
        """The command's answer ("return"), or None if QEMU does not give it in time; EOFError
        when QEMU is gone."""
        try:
            self.sock.sendall(json.dumps(command).encode() + b"\n")
        except OSError:
            raise EOFError from None
        deadline = time.monotonic() + ANSWER_SECONDS
        while time.monotonic() < deadline:
            message = self._message(deadline - time.monotonic())
            if "event" in message:
                self.events.append(message)
            elif "QMP" not in message:   # not the greeting
                return message.get("return")
        return None

    def event(self) -> dict:
        """The next event, or {} when none comes within a moment: the caller checks its
        requests between; EOFError when QEMU is gone."""
        return self.events.pop(0) if self.events else self._message(0.2)

    def _message(self, seconds: float) -> dict:
        while b"\n" not in self.buffer:
            self.sock.settimeout(max(seconds, 0.01))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return {}
            except OSError:
                raise EOFError from None
            if not chunk:
                raise EOFError
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {}


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""
