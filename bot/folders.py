"""Where bootbot keeps things. The state folder ([state] dir): the list bot's database, the
checks' result folders, the runs of `bootbot boot`, caches, the trees' fetch logs, the sources'
mirrors, the outbox's files. And a check's result folder: every fact of one check in plain files,
with the paths inside it relative, so that any reader (the CLI, the mail, a results page, a
remote worker) needs only the folder. Its layout:

    outcome.json                    the verdict and its facts (Outcome)
    boots/<phase>/<entry>/          console.log, command, result.json of each boot; the phase is
                                    base, series, or patches-1-<k> in the culprit search; and,
                                    where the machine stopped or hung, QEMU's registers then
                                    (registers) and, in a retry, its exception log (interrupts.log)
    builds/<n>-<phase>/build.log    the log of each build
"""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bot.words import COMMITS, GUESSED, MAILED

OUTCOME = "outcome.json"
CONSOLE, COMMAND, RESULT = "console.log", "command", "result.json"   # in each boot's folder


@dataclass(frozen=True)
class StateFolder:
    """The state folder's parts, named once."""
    root: Path

    @property
    def database(self) -> Path:      # the list bot's: bot/state/
        return self.root / "bootbot.sqlite3"

    @property
    def results(self) -> Path:       # a result folder per check
        return self.root / "results"

    @property
    def history(self) -> Path:       # the pages' index of the result folders, remade from them
        return self.root / "results.sqlite3"

    @property
    def runs(self) -> Path:          # a folder per `bootbot boot`
        return self.root / "runs"

    @property
    def cache(self) -> Path:         # derived boot files, the KVM probe's verdict, the bases' boots
        return self.root / "cache"

    @property
    def trees(self) -> Path:         # each tree's fetch log (bot/trees/upstream.py)
        return self.root / "trees"

    @property
    def sources(self) -> Path:       # each source's mirror
        return self.root / "sources"

    @property
    def outbox(self) -> Path:        # replies as files, with mail.smtp = "outbox"
        return self.root / "outbox"

    @property
    def lock(self) -> Path:          # held by the process in a cycle
        return self.root / "bootbot.lock"


@dataclass
class EntryOutcome:
    status: str          # with the change: pass, fail, timeout, flaky (passed and failed), error
    baseline: str        # on the base
    seconds: float
    reason: str          # the line (or fact) that decided the status
    log: str             # the console with the change
    base_log: str        # the console on the base
    experimental: bool
    accel: str
    files: dict[str, str] = field(default_factory=dict)   # what it booted with the change, and whence
    attempts: list[dict] = field(default_factory=list)        # each boot with the change: status, seconds,
    base_attempts: list[dict] = field(default_factory=list)   # reason, log; and each on the base
    kind: str = ""                                            # of failure, with the change
    block: list[str] = field(default_factory=list)            # its report, as the console has it
    location: dict = field(default_factory=dict)   # where it died, when the console did not say (Location)
    changed: dict = field(default_factory=dict)    # the patch that made the line it died on: patch, line


@dataclass
class BuildRecord:
    commit: str
    phase: str           # base, series, patches-1-<k>
    ok: bool
    seconds: float
    limit: str | None    # the sandbox limit that stopped it, if one did
    log: str             # its log
    errors: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    verdict: str
    series: dict                     # subject, version, patches: [{index, subject, msgid}]
    tree: str | None = None          # the tree kind it was checked against
    base: str | None = None
    base_how: str = ""               # how the base was found, in words
    base_by: str = ""                # the same as a word (BY_BASE_COMMIT ...; "": before bootbot said)
    base_tried: list[str] = field(default_factory=list)   # on a guessed base: the branches searched
    entries: dict[str, EntryOutcome] = field(default_factory=dict)
    culprit: dict | None = None      # the first bad patch: index, subject, msgid
    regressed: list[str] = field(default_factory=list)   # entries that boot on the base, not with the change
    detail: list[str] = field(default_factory=list)      # why it did not apply, build or run
    builds: list[BuildRecord] = field(default_factory=list)
    strict_experimental: bool = False
    reproduce: str = ""              # the command that checks the same again
    build_steps: list[str] = field(default_factory=list)   # how the tree was configured and built
    fragment: list[str] = field(default_factory=list)      # the configuration lines the build adds
    origin: dict = field(default_factory=dict)   # where the change came from: source (its name),
                                                 # archive (its URL), link (the thread)

    @property
    def change_kind(self) -> str:
        """MAILED or COMMITS (a folder from before bootbot said so: a branch's names its branch)."""
        return self.series.get("kind") or (COMMITS if "branch" in self.series else MAILED)

    @property
    def known_base(self) -> bool:
        """Whether the base is the change's own: where a failure can be blamed on a patch."""
        return self.base_by not in GUESSED


FOLDER = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")   # a result folder's name, as new_folder makes it


def new_folder(results: Path) -> Path:
    folder = results / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    folder.mkdir(parents=True)
    return folder


def write(folder: Path, outcome: Outcome) -> None:
    partial = folder / f"{OUTCOME}.partial"
    partial.write_text(json.dumps(asdict(outcome), indent=2) + "\n")
    partial.rename(folder / OUTCOME)   # a reader finds the whole outcome or none


def pack(folder: Path) -> bytes:
    """The folder as a gzipped tarball, under its own name; symlinks left out (they point at a
    machine's own files: the kernels a boot was given)."""
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name, filter=lambda info: None if info.issym() else info)
    return packed.getvalue()


def unpack(packed: bytes, results: Path) -> Path:
    """A packed result folder, as results/<its name>: whole or not at all. One there already (the
    same result, unpacked before a crash cut its recording short) is replaced. ValueError when
    `packed` is not one."""
    try:
        with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
            members = [_plain(member) for member in tar.getmembers()]
            names = {member.name.split("/")[0] for member in members}
            if len(names) != 1 or not FOLDER.fullmatch(next(iter(names))):
                raise ValueError(f"not a result folder: it holds {', '.join(sorted(names)[:3]) or 'nothing'}")
            results.mkdir(parents=True, exist_ok=True)
            incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=results))
            try:
                tar.extractall(incoming, members=members)
                folder = results / names.pop()
                if folder.exists():
                    shutil.rmtree(folder)
                (incoming / folder.name).rename(folder)
            finally:
                shutil.rmtree(incoming, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error) as e:   # EOFError: cut short
        raise ValueError(f"not a result folder: {e}") from None
    return folder


def _plain(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """A member as a result folder has them: a file or folder under a relative path, made ours.
    (tarfile's filter="data" does this from Python 3.11.4; Debian 12 has 3.11.2.)"""
    if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in member.name.split("/"):
        raise ValueError(f"not a result folder: it holds {member.name!r}")
    member.mode = 0o755 if member.isdir() else 0o644
    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    return member


def read(folder: Path) -> Outcome:
    """The outcome in `folder`; OSError or ValueError when it holds none."""
    data = json.loads((folder / OUTCOME).read_text())
    data["entries"] = {name: EntryOutcome(**e) for name, e in data["entries"].items()}
    data["builds"] = [BuildRecord(**b) for b in data["builds"]]
    return Outcome(**data)
