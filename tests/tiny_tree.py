"""A tiny git tree with boot-looking paths, and series made on it with `git format-patch`:
enough for series parsing and assembly, in milliseconds, where no kernel needs building."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

GIT_ENV = ["-c", "user.name=Ann Developer", "-c", "user.email=ann@example.org"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_ENV, *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def make_repo(parent: Path) -> Path:
    """A tiny tree with boot-looking paths in `parent`/repo: enough for series parsing, no kernel needed."""
    repo = parent / "repo"
    (repo / "arch/x86/boot").mkdir(parents=True)
    (repo / "arch/x86/boot/main.c").write_text("int main;\n")
    (repo / "Documentation").mkdir()
    (repo / "Documentation/old.rst").write_text("old\n")
    git(parent, "init", "-q", "-b", "master", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_repo(tmp_path)


def patches(repo: Path, out: Path, version: int, count: int = 2, extra: str = "", cover: bool = True,
            path: str = "arch/x86/boot/main.c") -> list[Path]:
    """`count` patches appending to `path`, as `git format-patch --thread` mails them."""
    base = git(repo, "rev-parse", "HEAD").strip()
    for n in range(1, count + 1):
        with (repo / path).open("a") as f:
            f.write(f"int v{version}_{n}{extra};\n")
        git(repo, "commit", "-q", "-am", f"x86/boot: step {n}", "-m", "Signed-off-by: Ann Developer <ann@example.org>")
    made = git(repo, "format-patch", "--thread", "--cover-letter" if cover else "--no-cover-letter",
               f"-v{version}", f"--base={base}",
               "-o", str(out), f"{base}..HEAD").split()
    git(repo, "reset", "-q", "--hard", base)
    for p in map(Path, made):   # git names a cover by the second it was made: keep revisions apart
        p.write_text(p.read_text().replace("<cover.", f"<cover-v{version}."))
    return [Path(p) for p in made]


def mbox(path: Path, parts: list[Path]) -> Path:
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    return path
