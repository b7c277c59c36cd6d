"""A real public-inbox archive for tests: a v2 inbox in a temporary folder, mail delivered with
public-inbox-mda, served by public-inbox-httpd on loopback.

The server inherits an already listening socket (systemd-style LISTEN_FDS), so it can be asked
at once: the kernel queues connections until it accepts them, and no test waits for start-up."""
from __future__ import annotations

import mailbox
import os
import socket
import subprocess
from pathlib import Path


class PublicInbox:
    def __init__(self, root: Path, name: str = "xen-devel", address: str = "xen-devel@lists.example.org"):
        self.root, self.name, self.address = root, name, address
        self.env = {**os.environ, "PI_CONFIG": str(root / "pi-config"), "HOME": str(root)}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/{name}"
        self._run("public-inbox-init", "-V2", name, str(root / name), self.url, address)
        self._run("git", "config", "-f", self.env["PI_CONFIG"], "publicinboxmda.spamcheck", "none")
        self.server = None

    def _run(self, *command: str, stdin: bytes | None = None, env: dict | None = None) -> None:
        done = subprocess.run(command, env={**self.env, **(env or {})}, input=stdin, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')}")

    def deliver(self, message: bytes) -> None:
        """Delivers one mail as the list would; mda takes only mail addressed to the list."""
        if self.address.encode() not in message.split(b"\n\n", 1)[0]:
            message = f"To: {self.address}\n".encode() + message
        self._run("public-inbox-mda", stdin=message, env={"ORIGINAL_RECIPIENT": self.address})

    def deliver_mbox(self, mbox: Path) -> None:
        for message in mailbox.mbox(mbox):
            self.deliver(message.as_bytes())

    def serve(self) -> str:
        listener = self.listener.fileno()
        # bash (dash cannot name fds above 9) puts the socket at fd 3 and execs: the PID stays $$.
        self.server = subprocess.Popen(
            ["bash", "-c", f"LISTEN_PID=$$ exec public-inbox-httpd -W0 3<&{listener}"],
            env={**self.env, "LISTEN_FDS": "1"}, pass_fds=(listener,),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.url

    def close(self) -> None:
        if self.server:
            self.server.terminate()
            self.server.wait()
        self.listener.close()
