"""Reading series with b4: from mboxes made by `git format-patch`, and from a real public-inbox."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from inbox import PublicInbox
from bot import series as series_module
from bot.series import SeriesError

GIT_ENV = ["-c", "user.name=Ann Developer", "-c", "user.email=ann@example.org"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_ENV, *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    """A tiny tree with boot-looking paths: enough for series parsing, no kernel needed."""
    repo = tmp_path / "repo"
    (repo / "arch/x86/boot").mkdir(parents=True)
    (repo / "arch/x86/boot/main.c").write_text("int main;\n")
    (repo / "Documentation").mkdir()
    (repo / "Documentation/old.rst").write_text("old\n")
    git(repo.parent, "init", "-q", "-b", "master", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def patches(repo: Path, out: Path, version: int, count: int = 2, extra: str = "") -> list[Path]:
    base = git(repo, "rev-parse", "HEAD").strip()
    for n in range(1, count + 1):
        with (repo / "arch/x86/boot/main.c").open("a") as f:
            f.write(f"int v{version}_{n}{extra};\n")
        git(repo, "commit", "-q", "-am", f"x86/boot: step {n}", "-m", "Signed-off-by: Ann Developer <ann@example.org>")
    made = git(repo, "format-patch", "--thread", "--cover-letter", f"-v{version}", f"--base={base}",
               "-o", str(out), f"{base}..HEAD").split()
    git(repo, "reset", "-q", "--hard", base)
    for p in map(Path, made):   # git names a cover by the second it was made: keep revisions apart
        p.write_text(p.read_text().replace("<cover.", f"<cover-v{version}."))
    return [Path(p) for p in made]


def mbox(path: Path, parts: list[Path]) -> Path:
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    return path


@pytest.fixture(autouse=True)
def b4_settings():
    series_module.configure_b4("http://127.0.0.1:9/unused")


def test_newest_revision_without_cover_letter(repo, tmp_path):
    v1 = patches(repo, tmp_path / "v1", 1)
    v2 = patches(repo, tmp_path / "v2", 2, extra="_again")
    series = series_module.read_mbox(mbox(tmp_path / "both.mbox", v1 + v2))
    assert series.version == 2
    assert [p.subject for p in series.patches] == ["x86/boot: step 1", "x86/boot: step 2"]
    assert [p.index for p in series.patches] == [1, 2]
    assert series.cover_msgid and series.cover_msgid not in [p.msgid for p in series.patches]
    assert len(series.am_messages) == 2 and b"v2_1_again" in series.am_messages[0]
    assert series.base_commit == git(repo, "rev-parse", "HEAD").strip()
    assert series.files == ["arch/x86/boot/main.c"]
    assert series.patches[0].author == "Ann Developer <ann@example.org>"


def test_trailers_from_replies_are_collected(repo, tmp_path):
    parts = patches(repo, tmp_path / "v1", 1)
    first = parts[1].read_text()
    msgid = first.split("Message-ID: ", 1)[1].split("\n", 1)[0] if "Message-ID: " in first else \
        first.split("Message-Id: ", 1)[1].split("\n", 1)[0]
    reply = tmp_path / "reply.eml"
    reply.write_text(f"From reviewer@example.org Mon Jan  1 00:00:00 2024\nFrom: Rita Reviewer <rita@example.org>\n"
                     f"Subject: Re: [PATCH v1 1/2] x86/boot: step 1\nMessage-ID: <reply-1@example.org>\n"
                     f"In-Reply-To: {msgid}\nReferences: {msgid}\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n"
                     f"> quoted\n\nReviewed-by: Rita Reviewer <rita@example.org>\n")
    series = series_module.read_mbox(mbox(tmp_path / "thread.mbox", parts + [reply]))
    assert b"Reviewed-by: Rita Reviewer <rita@example.org>" in series.am_messages[0]


def test_plain_format_patch_without_message_ids_is_accepted(repo, tmp_path):
    base = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "mv", "Documentation/old.rst", "Documentation/new.rst")
    git(repo, "commit", "-q", "-m", "docs: rename")
    made = git(repo, "format-patch", "-o", str(tmp_path / "plain"), f"{base}..HEAD").split()
    series = series_module.read_mbox(mbox(tmp_path / "plain.mbox", [Path(p) for p in made]))
    assert series.patches[0].msgid.endswith("@bootbot")
    assert series.files == ["Documentation/new.rst", "Documentation/old.rst"]


def test_a_missing_patch_is_said(repo, tmp_path):
    parts = patches(repo, tmp_path / "v1", 1, count=3)
    with pytest.raises(SeriesError, match="patch 2/3 of v1 is missing"):
        series_module.read_mbox(mbox(tmp_path / "gap.mbox", [parts[0], parts[1], parts[3]]))


def test_fetched_by_message_id_and_by_link_from_a_real_archive(repo, tmp_path):
    parts = patches(repo, tmp_path / "v1", 1)
    archive = PublicInbox(tmp_path / "archive")
    try:
        archive.deliver_mbox(mbox(tmp_path / "posted.mbox", parts))
        url = archive.serve()
        series_module.configure_b4(url)
        wanted = series_module.read_mbox(mbox(tmp_path / "local.mbox", parts))
        by_id = series_module.fetch(wanted.patches[1].msgid)
        by_link = series_module.fetch(f"{url}/{wanted.patches[0].msgid}/")
        for fetched in (by_id, by_link):
            assert [p.msgid for p in fetched.patches] == [p.msgid for p in wanted.patches]
            assert fetched.am_messages == wanted.am_messages
        with pytest.raises(SeriesError, match="no thread"):
            series_module.fetch("nobody-posted-this@example.org")
    finally:
        archive.close()


def test_check_takes_a_message_id_from_the_configured_archive(repo, tmp_path, bootbot, state):
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "Documentation/old.rst").write_text("new words\n")
    git(repo, "commit", "-q", "-am", "docs: reword")
    [posted] = git(repo, "format-patch", "--thread", "-o", str(tmp_path / "docs"), f"{base}..HEAD").split()
    archive = PublicInbox(tmp_path / "archive")
    try:
        archive.deliver(Path(posted).read_bytes().split(b"\n", 1)[1])
        config = tmp_path / "bootbot.toml"
        config.write_text(f'[state]\ndir = "{state}"\n[archive]\nurl = "{archive.serve()}"\n')
        msgid = Path(posted).read_text().split("Message-Id: <", 1)[1].split(">", 1)[0]
        run = bootbot("check", msgid, "--tree", str(repo), config_file=config)
        assert run.code == 0, run.stderr
        assert run.stdout.startswith("bootbot: SKIP for [PATCH] docs: reword")
        missing = bootbot("check", "nobody-posted-this@example.org", "--tree", str(repo), config_file=config)
        assert missing.code == 2 and "no thread" in missing.stderr
    finally:
        archive.close()
