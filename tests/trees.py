"""The real trees for tests (Linux, Xen), and series made against them with `git format-patch`.

Commits are made with git plumbing on a private index, so no checkout of the 80,000-file tree
is needed and the tree's branch never moves."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable

from harness import ROOT, cli

Edit = Callable[[str], str]
IDENTITY = {"GIT_AUTHOR_NAME": "Ann Developer", "GIT_AUTHOR_EMAIL": "ann@example.org",
            "GIT_COMMITTER_NAME": "Ann Developer", "GIT_COMMITTER_EMAIL": "ann@example.org"}


def linux() -> Path:
    return _made("linux-tree")


def xen() -> Path:
    return _made("xen-tree")


def _made(script: str) -> Path:
    """The tree scripts/<script> makes once per machine (a new one says so and takes a minute)."""
    made = subprocess.run([ROOT / "scripts" / script], capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"scripts/{script} failed: {made.stderr.strip()}")
    return Path(made.stdout.strip())


def make_commits(tree: Path, out: Path, patches: list[tuple[str, dict[str, Edit]]], base: str = "master",
                 git_dir: Path | None = None, committer: str = "Ann Developer <ann@example.org>") -> list[str]:
    """Commits of `patches` (message, {path: edit of the file's text}) on `base`, made in
    `git_dir` (default: the tree's own repository) without touching any checkout."""
    name, _, mail = committer.rpartition(" ")
    env = {**os.environ, "GIT_INDEX_FILE": str(out / "index"), **({"GIT_DIR": str(git_dir)} if git_dir else {}),
           **IDENTITY, "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": mail.strip("<>")}

    def git(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(["git", *args], cwd=tree, env=env, input=stdin, capture_output=True,
                              text=True, check=True).stdout

    out.mkdir(parents=True, exist_ok=True)
    git("read-tree", base)
    head = git("rev-parse", base).strip()
    made = []
    for message, edits in patches:
        for path, edit in edits.items():
            listed = git("ls-tree", head, path).split()
            old = git("show", f"{head}:{path}") if listed else ""
            blob = git("hash-object", "-w", "--stdin", stdin=edit(old)).strip()
            git("update-index", "--add", "--cacheinfo", f"{listed[0] if listed else '100644'},{blob},{path}")
        if "\n" not in message:
            message = f"{message}\n\nA test change made by bootbot's tests.\n\nSigned-off-by: Ann Developer <ann@example.org>\n"
        head = git("commit-tree", git("write-tree").strip(), "-p", head, "-m", message).strip()
        made.append(head)
    return made


def make_series(tree: Path, out: Path, patches: list[tuple[str, dict[str, Edit]]],
                base: str = "master", version: int = 1) -> Path:
    """An mbox of `patches` (subject, {path: edit of the file's text}) on `base`, as
    `git format-patch --thread --cover-letter` would mail them."""
    head = make_commits(tree, out, patches, base)[-1]
    patch_dir = out / "patches"
    subprocess.run(["git", "format-patch", "-q", "--thread", "--cover-letter" if len(patches) > 1 else "--no-cover-letter",
                    f"-v{version}", f"--base={base}", "-o", str(patch_dir), f"{base}..{head}"],
                   cwd=tree, capture_output=True, text=True, check=True, env={**os.environ, **IDENTITY})
    mbox = out / "series.mbox"
    mbox.write_bytes(b"".join(p.read_bytes() for p in sorted(patch_dir.glob("*.patch"))))
    return mbox


def replace(old: str, new: str) -> Edit:
    """An edit replacing the first `old` with `new`; `old` must be there."""
    def edit(text: str) -> str:
        assert old in text, f"test edit: {old!r} not found"
        return text.replace(old, new, 1)
    return edit


def add_after(anchor: str, line: str) -> Edit:
    return replace(anchor, anchor + line)


class Check:
    """`bootbot check` of `mbox` on `tree`, run as a user runs it: its exit code, output and the
    outcome it writes with --json (None when it wrote none)."""

    def __init__(self, mbox: Path, tree: Path, config: Path, out: Path, timeout: float = 1800):
        process = cli("check", str(mbox), "--tree", str(tree), "--json", str(out), config=config, timeout=timeout)
        self.code, self.stdout, self.stderr = process.returncode, process.stdout, process.stderr
        self.json = json.loads(out.read_text()) if out.exists() else None

    def statuses(self) -> dict[str, tuple[str, str]]:
        return {name: (e["status"], e["baseline"]) for name, e in self.json["entries"].items()}
