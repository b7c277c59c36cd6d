"""A real Redis for tests: Debian's redis-server on a free loopback port, its data in a folder,
appending every write (appendonly, as the README asks of an operator), so that a restart keeps
the queue. Ready once it says so, not after a sleep."""
from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path


class RedisServer:
    def __init__(self, root: Path, ready_seconds: float = 30):
        self.root, self.ready_seconds = root, ready_seconds
        root.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:   # redis-server takes no inherited socket: a free port, then its own
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()
        threading.Thread(target=self._drain, args=(ready,), daemon=True).start()
        if not ready.wait(self.ready_seconds) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"redis-server did not say it accepts connections within {self.ready_seconds} s")

    def _drain(self, ready: threading.Event) -> None:
        for line in self.process.stdout:
            if "Ready to accept connections" in line:
                ready.set()
        ready.set()   # it exited: not waited for

    def stop(self) -> None:
        """As an operator's restart does: SIGTERM, and it is gone once it has written its data."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
