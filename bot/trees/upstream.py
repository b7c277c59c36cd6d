"""The upstreams a tree follows ([[trees.KIND.upstream]]): each remote's branches, fetched into
refs/bootbot/upstream/NAME/BRANCH of the tree, never into its own branches; and the fetch log of
each tree (KIND.json in the state's trees/), which `bootbot trees`, the base search, the alarms
and the metrics read. A fetch is timeboxed; a failed one is recorded, never raised."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("bootbot.upstream")
REFS = "refs/bootbot/upstream"


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str
    branches: tuple[str, ...]   # names or globs ("stable-*"), as git's refspecs take them

    def refspecs(self) -> list[str]:
        return [f"+refs/heads/{branch}:{REFS}/{self.name}/{branch}" for branch in self.branches]


@dataclass(frozen=True)
class Following:
    """What a tree follows, and when it fetches ([trees.KIND] in the configuration)."""
    upstreams: tuple[Upstream, ...]
    every: float     # fetch_seconds: the periodic fetch
    timeout: float   # fetch_timeout: one upstream's fetch, at most
    refetch: float   # refetch_seconds: a missing base-commit fetches unless a fetch began this recently


@dataclass(frozen=True)
class Followed:
    """A followed branch as the tree has it now."""
    name: str      # UPSTREAM/BRANCH: "xen/staging", "tip/x86/boot"
    head: str
    date: int      # its head's committer date (Unix time)

    @property
    def ref(self) -> str:
        return f"{REFS}/{self.name}"


def followed(tree: Path) -> list[Followed]:
    """Every followed branch the tree holds, the newest head first."""
    listed = subprocess.run(["git", "-C", str(tree), "for-each-ref", "--sort=-committerdate",
                             "--format=%(refname) %(objectname) %(committerdate:unix)", f"{REFS}/"],
                            capture_output=True, text=True)
    branches = []
    for line in listed.stdout.splitlines():
        ref, head, date = line.split()
        branches.append(Followed(ref.removeprefix(f"{REFS}/"), head, int(date)))
    return branches


def log_of(logs: Path, kind: str, tree: Path) -> dict[str, dict]:
    """Each upstream's fetches into `tree` as recorded: url, first (attempt), fetched (the last
    attempt began), succeeded (the last good one began), seconds (the last one took), error
    (the last one's, else None), demanded (the last for a missing base-commit began), fetches,
    failures, total_seconds. Another tree's log is none."""
    try:
        data = json.loads((logs / f"{kind}.json").read_text())
    except (OSError, ValueError):
        return {}
    return data.get("upstreams", {}) if data.get("path") == str(tree) else {}


def every_log(logs: Path) -> dict[str, dict]:
    """Every tree's fetch log in the folder `logs`, by kind: {"path", "upstreams"}."""
    found = {}
    for file in sorted(logs.glob("*.json")):
        try:
            found[file.stem] = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
    return found


def fetch(kind: str, tree: Path, following: Following, logs: Path,
          due: Callable[[dict], bool] = lambda record: True, demanded: bool = False) -> dict[str, dict]:
    """Fetches each upstream whose record is `due`, one tree's fetches at a time (another waits,
    then finds the log as the first left it); records each (`demanded`: for a missing base).
    Returns the log."""
    with _locked(logs, kind):
        records = log_of(logs, kind, tree)
        for upstream in following.upstreams:
            record = records.setdefault(upstream.name, {})
            if not due(record):
                continue
            began = time.time()
            error = _fetch(tree, upstream, following.timeout)
            took = time.time() - began
            record.update(url=upstream.url, fetched=began, seconds=round(took, 3), error=error,
                          first=record.get("first", began), fetches=record.get("fetches", 0) + 1,
                          failures=record.get("failures", 0) + (error is not None),
                          total_seconds=round(record.get("total_seconds", 0) + took, 3),
                          succeeded=record.get("succeeded") if error else began,
                          demanded=began if demanded else record.get("demanded"))
            _write(logs, kind, tree, records)
            if error:
                log.warning("%s tree: %s", kind, error)
            else:
                log.info("%s tree: fetched %s in %.1f s", kind, upstream.name, took)
        return records


def keep_current(kind: str, tree: Path, following: Following, logs: Path) -> dict[str, dict]:
    """The periodic fetch: each upstream not fetched for `every` seconds."""
    return fetch(kind, tree, following, logs, lambda record: _since(record, "fetched") >= following.every)


def fetch_missing(kind: str, tree: Path, following: Following, logs: Path) -> list[str]:
    """For a base-commit the tree lacks: each upstream not fetched for a missing base in the last
    `refetch` seconds (a burst of such series costs one fetch). The upstreams fetched now."""
    before = {name: record.get("fetches", 0) for name, record in log_of(logs, kind, tree).items()}
    records = fetch(kind, tree, following, logs, lambda record: _since(record, "demanded") >= following.refetch,
                    demanded=True)
    return [name for name, record in records.items() if record.get("fetches", 0) > before.get(name, 0)]


def clone(tree_filter: str, first: Upstream, path: Path) -> None:
    """A new tree at `path` cloned from `first` (partial when `tree_filter` says so, e.g. blob:none),
    that remote named as the upstream; RuntimeError with git's last words when it fails."""
    argv = ["git", "clone", "--quiet", "--origin", first.name, *([f"--filter={tree_filter}"] if tree_filter else []),
            "--", first.url, str(path)]
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(f"git clone {first.url}: {said[-1] if said else f'exit status {done.returncode}'}")


def _since(record: dict, key: str) -> float:
    return time.time() - (record.get(key) or 0)


def _fetch(tree: Path, upstream: Upstream, timeout: float) -> str | None:
    """git's last words when the fetch fails or runs out of time, else None."""
    # Its own process group, so that a timeout also stops the helpers git starts (remote-https,
    # index-pack); no prompt for credentials, which nobody would answer.
    process = subprocess.Popen(["git", "-C", str(tree), "fetch", "--quiet", "--no-tags", "--prune", upstream.url,
                                *upstream.refspecs()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    try:
        _, said = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return f"git fetch {upstream.url}: stopped after {timeout:.0f} s"
    if process.returncode == 0:
        return None
    lines = [line for line in said.strip().splitlines() if line.strip()]
    return f"git fetch {upstream.url}: {lines[-1] if lines else f'exit status {process.returncode}'}"


def _write(logs: Path, kind: str, tree: Path, records: dict) -> None:
    file = logs / f"{kind}.json"
    partial = file.with_suffix(".partial")
    partial.write_text(json.dumps({"path": str(tree), "upstreams": records}, indent=1) + "\n")
    partial.rename(file)   # a reader finds the whole log or the one before


@contextmanager
def _locked(logs: Path, kind: str):
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{kind}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
