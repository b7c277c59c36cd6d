"""Confinement for what bootbot runs of other people's making: the build of a posted series
(its Makefiles and scripts run) and the kernel that build makes (booted under QEMU).

bubblewrap gives each run new mount, network, pid, ipc and uts namespaces: of the host only the
system folders (/usr, /etc) read-only and the paths named, a private /tmp, a network of its own
loopback alone. When bootbot is root a run drops to an unprivileged uid: the kernel never applies
the process limit (RLIMIT_NPROC) to root, and an escaped process owns nothing of bootbot's."""
from __future__ import annotations

import functools
import os
import re
import selectors
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bot.words import LabError

SYSTEM = ("/usr", "/etc")
_SYSTEM_MOUNTS = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
                  "--dev", "/dev", "--proc", "/proc"]
_NAMESPACES = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--die-with-parent", "--new-session"]
# The whole environment of a confined run, whoever starts it (QEMU's vvfat wants TMPDIR).
ENV = {"PATH": "/usr/bin:/usr/sbin", "HOME": "/tmp", "TMPDIR": "/tmp", "LC_ALL": "C.UTF-8"}
_ENVIRONMENT = ["--clearenv", *(arg for name, value in ENV.items() for arg in ("--setenv", name, value))]

# How a process that hit a kernel-enforced limit shows in the output: the shell and make name
# the signal (SIGXCPU, SIGXFSZ) or the error of the call that failed (fork, malloc).
_SIGNS = {
    "cpu": re.compile(r"CPU time limit exceeded"),
    "file": re.compile(r"File size limit exceeded"),
    "processes": re.compile(r"fork: (retry: )?Resource temporarily unavailable|Cannot fork"),
    "memory": re.compile(r"^\S*: out of memory allocating|virtual memory exhausted|Cannot allocate memory"
                         r"|MemoryError|std::bad_alloc", re.M),
}


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float  # wall clock of one run
    cpu_seconds: int    # CPU time of any one process
    memory_mb: int      # address space of any one process
    processes: int      # processes and threads of the run at once
    file_mb: int        # the largest file it may write
    log_mb: int         # its output

    def describe(self, name: str) -> str:
        return {"wall-clock": f"the wall-clock limit ({self.wall_seconds:g} s)",
                "cpu": f"the CPU time limit ({self.cpu_seconds} s per process)",
                "memory": f"the memory limit ({self.memory_mb} MiB per process)",
                "processes": f"the process limit ({self.processes})",
                "file": f"the file size limit ({self.file_mb} MiB)",
                "log": f"the output limit ({self.log_mb} MiB of log)"}[name]


@dataclass(frozen=True)
class Finished:
    returncode: int | None    # None: stopped by bootbot at a limit
    limit: str | None         # which limit ended the run, when one did

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Sandbox:
    uid: int                      # the uid a run drops to when bootbot is root
    limits: SandboxLimits | None = None  # None: confinement only (QEMU: its guest's size is its own limit)

    def command(self, argv: list[str], *, cwd: Path, readable=(), writable=(), devices=()) -> list[str]:
        """`argv` wrapped: bwrap, then the uid drop and the resource limits, then argv itself."""
        return ["bwrap", *_SYSTEM_MOUNTS, *_system_links(), *self._tmp(), *_binds(readable, writable, devices),
                *_NAMESPACES, *_ENVIRONMENT, "--chdir", str(cwd), "--", *self._drop(devices), *self._limit(), *argv]

    def confine(self, argv: list[str], *, cwd: Path, readable=(), writable=(), devices=()) -> list[str]:
        """The command to run `argv` with, once the sandbox is known to work here and the
        writable paths belong to the run's uid; LabError when it does not work."""
        self.probe()
        own(writable, self.uid)
        return self.command(argv, cwd=cwd, readable=readable, writable=writable, devices=devices)

    def run(self, argv: list[str], *, cwd: Path, log: Path, readable=(), writable=()) -> Finished:
        """Runs `argv` confined and limited, appending its output to `log`; which limit it hit."""
        assert self.limits is not None, "a run has limits: Sandbox(uid, limits)"
        command = self.confine(argv, cwd=cwd, readable=readable, writable=writable)
        start = log.stat().st_size if log.exists() else 0
        with log.open("ab") as sink:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
            try:
                stopped = _copy_output(process, sink, self.limits)
            finally:
                stop(process)
        if stopped:
            return Finished(None, stopped)
        if process.returncode == 0:
            return Finished(0, None)
        with log.open("rb") as f:
            f.seek(start)
            output = f.read().decode("utf-8", "replace")
        return Finished(process.returncode, next((n for n, s in _SIGNS.items() if s.search(output)), None))

    def probe(self) -> None:
        """Raises LabError when bwrap (or the uid drop) cannot run here, so that a host
        without namespaces is a lab error, never a build failure blamed on a patch."""
        failure = _probe(tuple(Sandbox(self.uid).command(["true"], cwd=Path("/"))))
        if failure:
            raise LabError(failure)

    def _tmp(self) -> list[str]:
        """A private /tmp for everyone (the run's uid is not root), as large as a file may be:
        it lives in memory. /var/tmp is the same (QEMU's vvfat keeps its scratch file there)."""
        size = ["--size", str(self.limits.file_mb << 20)] if self.limits else []
        return ["--perms", "01777", *size, "--tmpfs", "/tmp",
                "--perms", "0755", "--dir", "/var", "--symlink", "/tmp", "/var/tmp"]

    def _drop(self, devices) -> list[str]:
        if os.geteuid() != 0:
            return []
        groups = sorted({os.stat(d).st_gid for d in devices if os.path.exists(d)})
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}",
                f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups", "--"]

    def _limit(self) -> list[str]:
        if self.limits is None:
            return []
        limits, mib = self.limits, 1 << 20
        # RLIMIT_NPROC counts every process of the uid: when not root that includes the user's own.
        processes = limits.processes + (0 if os.geteuid() == 0 else _tasks_of(os.getuid()))
        # SIGXCPU at the soft CPU limit names itself in the log; the hard one, a second on, is SIGKILL.
        return ["prlimit", f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}", f"--as={limits.memory_mb * mib}",
                f"--nproc={processes}", f"--fsize={limits.file_mb * mib}", "--core=0", "--"]


def _system_links() -> list[str]:
    """/bin, /lib ... as the host has them: links into /usr on a merged-/usr system, else binds."""
    args = []
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    return args


def _binds(readable, writable, devices) -> list[str]:
    """Bind arguments, each path at its own host path, with its parents made traversable."""
    binds = [("--ro-bind", Path(p).resolve()) for p in readable] + \
            [("--bind", Path(p).resolve()) for p in writable] + [("--dev-bind-try", Path(d)) for d in devices]
    args, made = [], set()
    for kind, path in sorted(binds, key=lambda b: len(b[1].parts)):
        if kind == "--ro-bind" and any(path.is_relative_to(s) for s in SYSTEM):
            continue   # visible already
        for parent in reversed(path.parents[:-1]):
            if parent not in made and not parent.is_relative_to("/dev"):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += [kind, str(path), str(path)]
        made.add(path)
    return args


def own(paths, uid: int) -> None:
    """Gives the writable paths to the run's uid (when root), once: later runs find them owned."""
    if os.geteuid() != 0:
        return
    for top in map(Path, paths):
        if top.stat().st_uid == uid:
            continue
        for folder, dirs, files in os.walk(top):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.lchown(name, uid, uid)


def _copy_output(process: subprocess.Popen, sink, limits: SandboxLimits) -> str | None:
    """Copies the output to `sink` until the process ends; the limit it overran, if any."""
    deadline = time.monotonic() + limits.wall_seconds
    room = limits.log_mb << 20
    assert process.stdout is not None   # a pipe: Popen(stdout=PIPE)
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "wall-clock"
            if not selector.select(left):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            sink.write(chunk[:room])
            room -= len(chunk)
            if room < 0:
                return "log"
    try:   # the output ended; the process may linger with it closed
        process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return "wall-clock"
    return None


def stop(process: subprocess.Popen) -> None:
    """Ends a confined run at once and closes its pipes: whatever ran in it is disposable."""
    if process.poll() is None:
        process.kill()   # bwrap's death takes the whole pid namespace with it (--die-with-parent)
    process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe:
            pipe.close()


@functools.cache
def _probe(command: tuple[str, ...]) -> str | None:
    try:
        run = subprocess.run(command, capture_output=True, text=True)
    except OSError as e:
        return f"cannot start {command[0]} (the bubblewrap package): {e.strerror}"
    if run.returncode != 0:
        return f"the sandbox does not start here: {(run.stderr or run.stdout).strip()[:300]}"
    return None


def _tasks_of(uid: int) -> int:
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue   # it ended meanwhile
    return count
