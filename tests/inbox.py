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

    def start_epoch(self, epoch: int, message: bytes) -> None:
        """What public-inbox does when the newest epoch reaches its size limit (about 2.5 GB, not
        configurable), made by hand: a new git repository whose first commit holds one message."""
        repository = self.root / self.name / "git" / f"{epoch}.git"
        identity = {"GIT_AUTHOR_NAME": "archive", "GIT_AUTHOR_EMAIL": "archive@localhost",
                    "GIT_COMMITTER_NAME": "archive", "GIT_COMMITTER_EMAIL": "archive@localhost"}

        def git(*args: str, stdin: bytes | None = None) -> str:
            return subprocess.run(["git", "-C", str(repository), *args], input=stdin, capture_output=True,
                                  check=True, env={**self.env, **identity}).stdout.decode().strip()

        subprocess.run(["git", "init", "-q", "--bare", str(repository)], check=True)
        blob = git("hash-object", "-w", "--stdin", stdin=message)
        tree = git("mktree", stdin=f"100644 blob {blob}\tm\n".encode())
        git("update-ref", "refs/heads/master", git("commit-tree", tree, "-m", "a message"))

    def serve(self) -> str:
        listener = self.listener.fileno()
        # bash (dash cannot name fds above 9) puts the socket at fd 3 and execs: the PID stays $$.
        self.server = subprocess.Popen(
            ["bash", "-c", f"LISTEN_PID=$$ exec public-inbox-httpd -W0 3<&{listener}"],
            env={**self.env, "LISTEN_FDS": "1"}, pass_fds=(listener,),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.url

    def restart(self) -> None:
        """A new server on the same socket: public-inbox-httpd sees what its Xapian index gained
        only on its own timer (about 30 s here); a new one sees it at once."""
        self.server.terminate()
        self.server.wait()
        self.serve()

    def close(self) -> None:
        if self.server:
            self.server.terminate()
            self.server.wait()
        self.listener.close()
