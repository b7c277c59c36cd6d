"""A Xen tree that follows an upstream (served by git daemon on loopback), with the list bot:
series whose base only the upstream has, found by their base-commit and by their blobs after the
periodic fetch, built and booted to a pass, and not mailed."""
from __future__ import annotations

import json
import subprocess

import pytest
import trees
from git_server import GitServer
from harness import Lab, follow
from tiny_tree import git

REPLIES = ["regression", "apply-failed", "build-failed"]   # mail.reply_on's default


@pytest.fixture
def xen_upstream(tmp_path):
    """An upstream of the Xen tree the tests build: a bare repository sharing its objects, served
    by git daemon. The refs the bot fetches into the shared Xen tree are deleted when it ends."""
    xen = trees.xen()
    bare = tmp_path / "git" / "xen.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--shared", str(xen), str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "branch", "-q", "-m", "master", "staging"], check=True)
    server = GitServer(tmp_path / "git")
    yield xen, bare, server
    server.close()
    refs = subprocess.run(["git", "-C", str(xen), "for-each-ref", "--format=delete %(refname)", "refs/bootbot/upstream/"],
                          capture_output=True, text=True, check=True).stdout
    subprocess.run(["git", "-C", str(xen), "update-ref", "--stdin"], input=refs, text=True, check=True)


EFI_BOOT_C = "xen/common/efi/boot.c"
EFI_ANCHOR = "#include <xen/dmi.h>\n"


def test_xen_series_whose_base_only_the_upstream_has_are_checked_to_a_pass_unmailed(tmp_path, xen_upstream,
                                                                                      workspaces):
    xen, bare, server = xen_upstream
    lab = Lab(tmp_path, trees.linux(), REPLIES, workspaces, xen=xen)
    try:
        follow(lab.config, "xen", server.url("xen.git"), "staging", fetch_seconds=3600)
        assert lab.poll().returncode == 0, lab.log   # the first periodic fetch, before the upstream moves
        [docs] = trees.make_commits(xen, tmp_path / "u1", [("docs: a line", {"README": lambda t: t + "\nmore\n"})],
                                    base="staging", git_dir=bare)
        git(bare, "update-ref", "refs/heads/staging", docs)
        with_base = trees.make_series(bare, tmp_path / "s1", [
            ("xen/efi: a comment", {EFI_BOOT_C: trees.add_after(EFI_ANCHOR, "/* bootbot upstream test 1 */\n")})],
            base=docs)
        lab.inbox.deliver_mbox(with_base)
        assert lab.poll().returncode == 0, lab.log   # its base-commit, fetched when it was not there
        [moved] = trees.make_commits(xen, tmp_path / "u2", [
            ("xen/efi: another comment", {EFI_BOOT_C: trees.add_after(EFI_ANCHOR, "/* bootbot upstream moved */\n")})],
            base="staging", git_dir=bare)
        git(bare, "update-ref", "refs/heads/staging", moved)
        without = trees.make_series(bare, tmp_path / "s2", [
            ("xen/efi: a third comment", {EFI_BOOT_C: trees.add_after(EFI_ANCHOR, "/* bootbot upstream test 2 */\n")})],
            base=moved)
        without.write_text("".join(l for l in without.read_text().splitlines(True) if not l.startswith("base-commit:")))
        lab.config.write_text(lab.config.read_text().replace("fetch_seconds = 3600", "fetch_seconds = 0"))
        lab.inbox.deliver_mbox(without)
        assert lab.poll().returncode == 0, lab.log   # the periodic fetch, then its files' blobs
        with lab.db() as db:
            folders = [r[0] for r in db.execute("SELECT result FROM job ORDER BY id")]
        first, second = (json.loads((lab.state / "results" / f / "outcome.json").read_text()) for f in folders)
        assert (first["verdict"], first["base"], first["base_by"]) == ("pass", docs, "base-commit"), first["detail"]
        assert first["base_how"] == "its base-commit, fetched from up"
        assert (second["verdict"], second["base"], second["base_by"]) == ("pass", moved, "blobs"), second["detail"]
        assert set(first["entries"]) == {"xen-efi", "xen-mb2-efi"}
        assert lab.sink.received == []   # a pass is not mailed by default
    finally:
        lab.close()
