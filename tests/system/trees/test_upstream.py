"""Trees that follow upstreams, with the list bot, against real servers on loopback: upstreams
served by git daemon, the archive, the SMTP sink. On the tiny tree, what needs no build: a series
whose base is nowhere (no-base), one that does not apply on its own base (blamed), an upstream
that goes down, `bootbot trees` and `trees init` (tests/boot/trees/test_upstream.py checks Xen
series whose base only the upstream has to a pass)."""
from __future__ import annotations

import email
import json
import subprocess
from email.policy import default
from pathlib import Path

import pytest
from git_server import GitServer
from harness import Lab, cli, follow, ids, posted
from tiny_tree import git, make_repo, patches

REPLIES = ["regression", "apply-failed", "build-failed"]   # mail.reply_on's default
OPERATOR = "ops@example.org"


class Following(Lab):
    """test_bot's lab whose Linux tree is the bot's clone of a tiny upstream (served by git
    daemon), with an operator who hears alarms at once."""

    def __init__(self, root: Path):
        self.root, self.dev = root, make_repo(root)   # the developers' tree: they push to the upstream
        self.git = GitServer(root / "git")
        self.bare = root / "git" / "linux.git"
        git(root, "clone", "-q", "--bare", str(self.dev), str(self.bare))
        tree = root / "tree"
        git(root, "clone", "-q", str(self.bare), str(tree))
        super().__init__(root, tree, REPLIES, root / "workspaces")
        follow(self.config, "linux", self.git.url("linux.git"), "master", fetch_seconds=3600, refetch_seconds=3600)
        text = self.config.read_text().replace("[mail]\n", f'[mail]\noperator = "{OPERATOR}"\n')
        self.config.write_text(text + "[health]\ntree_stale_seconds = 0\n")

    def push(self) -> str:
        git(self.dev, "push", "-q", "--force", str(self.bare), "HEAD:refs/heads/master")
        return git(self.dev, "rev-parse", "HEAD").strip()

    def commit(self, path: str, text: str) -> str:
        (self.dev / path).write_text(text)
        git(self.dev, "commit", "-q", "-am", f"change {path}")
        return git(self.dev, "rev-parse", "HEAD").strip()

    def series(self, name: str, spoil: bool = False) -> list[Path]:
        """Two patches on the developers' head, base-commit and cover letter as git makes them;
        `spoil`: patch 2 changed so it cannot apply anywhere."""
        made = patches(self.dev, self.root / name, 1, count=2, extra=f"_{name}")
        for mail in made:   # git names a cover by the second it was made: keep series apart
            mail.write_text(mail.read_text().replace("<cover-v1.", f"<cover-{name}."))
        if spoil:
            made[2].write_text(made[2].read_text().replace(f"int v1_1_{name};", f"int never_there_{name};"))
        return made

    def post(self, mails: list[Path]) -> None:
        for mail in mails:
            self.inbox.deliver(mail.read_bytes().split(b"\n", 1)[1])   # without the mbox From_ line

    def verdicts(self) -> list[tuple[str, str]]:
        with self.db() as db:
            return db.execute("SELECT verdict, result FROM job ORDER BY id").fetchall()

    def fetches(self) -> dict:
        return json.loads((self.state / "trees" / "linux.json").read_text())["upstreams"]["up"]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return cli(*args, config=self.config, timeout=120)

    def close(self) -> None:
        super().close()
        self.git.close()


@pytest.fixture
def lab(tmp_path):
    made = Following(tmp_path)
    yield made
    made.close()


def test_a_base_nowhere_is_no_base_and_unmailed_while_a_series_that_fails_on_its_own_base_is_blamed(lab):
    assert lab.poll().returncode == 0, lab.log   # the first periodic fetch: nothing to check
    local = lab.commit("arch/x86/boot/main.c", "int main;\nint never_pushed;\n")
    nowhere = lab.series("nowhere")   # made on a commit no upstream has, changing main.c as only it has it
    git(lab.dev, "reset", "-q", "--hard", "HEAD~1")
    pushed = lab.commit("Documentation/old.rst", "newer\n")
    lab.push()
    spoiled = lab.series("spoiled", spoil=True)   # made on the pushed commit, which the tree lacks
    lab.post(nowhere)
    lab.post(spoiled)
    done = lab.poll()
    assert done.returncode == 0, lab.log
    [reply] = lab.replies(1)
    culprit = email.message_from_bytes(posted(spoiled[2])[0], policy=default)
    assert ids(reply.message["In-Reply-To"]) == ids(culprit["Message-ID"])
    body = reply.message.get_content().replace("\r\n", "\n")
    assert body.startswith("bootbot: APPLY FAILED") and "Patch 2 does not apply on" in body
    assert f"Base: {pushed[:12]}, its base-commit." in body and "First bad patch: [2/2]" in body
    (no_base, folder), (apply_failed, _) = lab.verdicts()
    assert (no_base, apply_failed) == ("no-base", "apply-failed")
    report = lab.cli("report", str(lab.state / "results" / folder))
    assert report.returncode == 3, report.stderr
    assert report.stdout.startswith("bootbot: NO BASE for [PATCH 0/2] ")
    assert f"its base-commit {local[:12]} is not in the tree" in " ".join(report.stdout.split())
    assert "  git format-patch --base=auto" in report.stdout and "Reported-by" not in report.stdout
    # one fetch for the missing bases, the burst's first: the second series' base came with it
    assert lab.fetches()["fetches"] == 2 and lab.fetches()["demanded"] is not None


def test_an_upstream_down_is_recorded_and_alarmed_and_the_cycle_goes_on(lab):
    assert lab.poll().returncode == 0, lab.log
    follow_now = lab.config.read_text().replace("fetch_seconds = 3600", "fetch_seconds = 0")
    lab.config.write_text(follow_now)   # the periodic fetch at every cycle
    port = lab.git.port
    lab.git.close()
    spoiled = lab.series("spoiled", spoil=True)   # on the tree's own commit: a known base
    lab.post(spoiled)
    down = lab.poll()
    assert down.returncode == 0, lab.log
    mails = lab.replies(2)
    [alarm] = [m for m in mails if m.recipients == [OPERATOR]]
    [reply] = [m for m in mails if m.recipients != [OPERATOR]]
    assert "the linux tree" in alarm.message["Subject"] and "has not fetched up well" in alarm.message["Subject"]
    assert reply.message.get_content().startswith("bootbot: APPLY FAILED")
    record = lab.fetches()
    assert record["error"].startswith(f"git fetch {lab.git.url('linux.git')}: ") and record["failures"] >= 1
    assert record["succeeded"] < record["fetched"]
    status = lab.cli("status")
    assert f"tree linux {lab.root / 'tree'}: up fetched" in status.stdout and "failing: git fetch" in status.stdout
    shown = lab.cli("trees")
    assert shown.returncode == 0 and "up git://" in shown.stdout and "failed: git fetch" in shown.stdout
    lab.git = GitServer(lab.root / "git", port=port)
    back = lab.poll()
    assert back.returncode == 0, lab.log
    assert lab.fetches()["error"] is None and len(lab.sink.received) == 2   # nothing doubled, the alarm over
    with lab.db() as db:
        assert db.execute("SELECT key FROM notice WHERE key LIKE 'alarm:%'").fetchall() == []


def test_trees_init_clones_partially_fetches_every_upstream_and_names_the_path(tmp_path):
    dev = make_repo(tmp_path)
    server = GitServer(tmp_path / "git")
    try:
        for name in ("mainline.git", "tip.git"):
            git(tmp_path, "clone", "-q", "--bare", str(dev), str(tmp_path / "git" / name))
            git(tmp_path / "git" / name, "config", "uploadpack.allowFilter", "true")
        (dev / "arch/x86/boot/main.c").write_text("int main;\nint tip;\n")
        git(dev, "commit", "-q", "-am", "x86/boot: in tip only")
        tip_head = git(dev, "rev-parse", "HEAD").strip()
        git(dev, "push", "-q", str(tmp_path / "git" / "tip.git"), "HEAD:refs/heads/x86/boot")
        config = tmp_path / "bootbot.toml"
        config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n'
                          f'[[trees.linux.upstream]]\nname = "mainline"\nurl = "{server.url("mainline.git")}"\n'
                          'branches = ["master"]\n'
                          f'[[trees.linux.upstream]]\nname = "tip"\nurl = "{server.url("tip.git")}"\n'
                          'branches = ["master", "x86/*"]\n')

        def trees_cli(*args: str) -> subprocess.CompletedProcess:
            return cli("trees", *args, config=config, timeout=300)

        made = trees_cli("init", "linux", str(tmp_path / "linux"))
        assert made.returncode == 0, made.stderr
        tree = tmp_path / "linux"
        assert git(tree, "config", "remote.mainline.partialclonefilter").strip() == "blob:none"
        assert git(tree, "rev-parse", "refs/bootbot/upstream/tip/x86/boot").strip() == tip_head
        assert git(tree, "for-each-ref", "--format=%(refname)", "refs/heads").split() == ["refs/heads/master"]
        assert f'[trees.linux]\npath = "{tree}"\n' in config.read_text()
        shown = trees_cli()
        assert f"linux: {tree}, series without a base go to master" in shown.stdout
        assert f"    x86/boot         {tip_head[:12]}" in shown.stdout
        again = trees_cli("init", "linux", str(tree))
        assert again.returncode == 2 and again.stderr == f"bootbot: {tree} exists and is not empty\n"
        assert trees_cli("fetch", "xen").returncode == 2
        fetched = trees_cli("fetch")
        assert fetched.returncode == 0 and fetched.stdout.startswith("linux: mainline: fetched in "), fetched.stdout
    finally:
        server.close()
