"""The unit tier's guard: no server program started, no QEMU run (a bare socket, listening for what
a sandboxed build must not reach, is no server). tests/unit/conftest.py installs it around each
unit test in the tests' process, and Python runs this file at the start of every Python process
those tests start (it is first on their PYTHONPATH): bootbot's command line among them."""
from __future__ import annotations

import os
import subprocess
from typing import Callable

SERVERS_AND_QEMU = {"qemu-system-x86_64", "qemu-system-i386", "qemu-system-aarch64", "public-inbox-httpd",
                    "redis-server", "chromium", "chromedriver"}


class Refused(AssertionError):
    """A unit test started what only the system and boot tiers may."""


def _popen(real: Callable) -> Callable:
    def guarded(self, args, *rest, **kwargs):
        argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        started = {os.path.basename(str(arg)) for arg in argv} & SERVERS_AND_QEMU
        if started or [str(a) for a in argv[:2]] == ["git", "daemon"]:
            raise Refused(f"a unit test starts no server and no QEMU (tests/system, tests/boot): "
                          f"{', '.join(sorted(started)) or 'git daemon'}")
        real(self, args, *rest, **kwargs)
    return guarded


def install(patch: Callable[[object, str, object], None] = setattr) -> None:
    patch(subprocess.Popen, "__init__", _popen(subprocess.Popen.__init__))


if __name__ == "sitecustomize":   # a process a unit test started
    install()
