"""Series read from a real public-inbox archive, by Message-ID and by link (bot/changes/series.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from inbox import PublicInbox
from tiny_tree import git, mbox, patches

from bot.changes import series as series_module
from bot.changes.series import SeriesError


@pytest.fixture(autouse=True)
def b4_settings():
    series_module.configure_b4("http://127.0.0.1:9/unused")


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
