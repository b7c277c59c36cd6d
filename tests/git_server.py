"""A real git server for tests: `git daemon` on loopback serving bare repositories under a folder,
as a remote of branches (tip's x86/boot) is served. Ready once it says so, not after a sleep."""
from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path


class GitServer:
    def __init__(self, root: Path, ready_seconds: float = 30, port: int | None = None):
        """`port`: the one a server before it had (a restart), else a free one."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:   # git daemon takes no inherited socket: a free port, then its own
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # a restart's port may be in TIME_WAIT
            probe.bind(("127.0.0.1", port or 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            ["git", "daemon", "--verbose", "--export-all", "--reuseaddr", f"--base-path={root}",
             "--listen=127.0.0.1", f"--port={self.port}", str(root)],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        ready = threading.Event()
        threading.Thread(target=self._drain, args=(ready,), daemon=True).start()
        if not ready.wait(ready_seconds):
            self.close()
            raise RuntimeError(f"git daemon did not say it listens within {ready_seconds} s")
        if self.process.poll() is not None:
            raise RuntimeError(f"git daemon exited with {self.process.returncode}")

    def _drain(self, ready: threading.Event) -> None:
        """Reads the daemon's log to its end (a full pipe would stop it), setting `ready` when it
        listens; also at its exit, so that a daemon that failed is not waited for."""
        for line in self.process.stderr:
            if "Ready to rumble" in line:
                ready.set()
        ready.set()

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
