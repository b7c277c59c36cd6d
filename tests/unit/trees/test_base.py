"""Where a series applies (bot/trees/base.py), on tiny trees that follow real upstreams (bare
repositories reached by git's file:// transport): its base-commit, fetched when the tree lacks it;
the blobs its patches name, on every followed branch; its subject tags; the default branch."""
from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from conftest import DECLARED
from tiny_tree import git, make_repo, mbox, patches

from bot.changes import series as series_module
from bot.trees import base as base_module
from bot.trees import upstream
from bot.trees.site import Site
from bot.trees.upstream import Following, Upstream
from bot.words import BY_BASE_COMMIT, BY_BLOBS, BY_BRANCH, BY_TAG, LabError

XEN = DECLARED.trees["xen"]


class Upstreams:
    """A bare upstream (xen.git: staging, master, stable-4.21), a developer's clone that pushes to
    it, and the bot's tree, cloned from it now and never fetched by hand."""

    def __init__(self, root: Path):
        series_module.configure_b4("http://127.0.0.1:9/unused")
        self.root = root
        self.dev = make_repo(root)   # its one commit: the tree's start
        git(self.dev, "branch", "-m", "staging")
        self.bare = root / "xen.git"
        git(root, "clone", "-q", "--bare", str(self.dev), str(self.bare))
        self.push("master", "stable-4.21")
        self.tree = root / "tree"
        git(root, "clone", "-q", str(self.bare), str(self.tree))
        self.logs = root / "state" / "trees"   # the trees' fetch logs

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, path: str, text: str, message: str) -> str:
        (self.dev / path).write_text(text)
        git(self.dev, "commit", "-q", "-am", message)
        return git(self.dev, "rev-parse", "HEAD").strip()

    def push(self, *branches: str, what: str = "HEAD") -> None:
        for branch in ("staging", *branches):
            git(self.dev, "push", "-q", "--force", str(self.bare), f"{what}:refs/heads/{branch}")

    def series(self, name: str, with_base: bool = True, subject_tag: str = "") -> Path:
        """Two patches on the developer's head, mailed with or without base-commit."""
        made = patches(self.dev, self.root / name, 1, count=2)
        if not with_base:
            for p in made:
                p.write_text("".join(l for l in p.read_text().splitlines(True) if not l.startswith("base-commit:")))
        if subject_tag:
            for p in made:
                p.write_text(p.read_text().replace("Subject: [PATCH ", f"Subject: [PATCH {subject_tag} ", 1))
        return mbox(self.root / f"{name}.mbox", made)

    def following(self, **timing) -> Following:
        timing = {"every": 900, "timeout": 60, "refetch": 300, **timing}
        return Following((Upstream("xen", self.url, ("staging", "master", "stable-*")),), **timing)

    def site(self, following: Following | None = None, branch: str | None = "staging") -> Site:
        return Site("xen", self.tree, branch, following)

    def find(self, mbox_path: Path, site: Site) -> base_module.Base:
        return base_module.find(site, series_module.read_mbox(mbox_path), self.logs, XEN.tags)

    def fetches(self) -> int:
        return sum(r["fetches"] for r in upstream.log_of(self.logs, "xen", self.tree).values())


@pytest.fixture
def ups(tmp_path) -> Upstreams:
    return Upstreams(tmp_path)


def test_a_base_commit_the_tree_has_is_taken_with_no_fetch_of_its_own(ups):
    made_on = ups.commit("Documentation/old.rst", "newer\n", "docs: newer")
    ups.push()
    mails = ups.series("s")
    site = ups.site(ups.following(every=10**6))
    upstream.keep_current("xen", ups.tree, site.following, ups.logs)   # the periodic fetch: before the push
    ups.commit("Documentation/old.rst", "newest\n", "docs: newest")
    ups.push()
    assert git(ups.tree, "cat-file", "-t", made_on).strip() == "commit"   # fetched with master above
    base = ups.find(mails, site)
    assert (base.commit, base.by, base.known, ups.fetches()) == (made_on, BY_BASE_COMMIT, True, 1)
    assert base.how == "its base-commit"


def test_a_base_commit_the_tree_lacks_costs_one_fetch_for_a_burst(ups):
    site = ups.site(ups.following(every=10**6))
    upstream.keep_current("xen", ups.tree, site.following, ups.logs)
    made_on = ups.commit("Documentation/old.rst", "newer\n", "docs: newer")
    ups.push()
    first, second = ups.series("one"), ups.series("two")
    base = ups.find(first, site)
    assert (base.commit, base.by, base.how) == (made_on, BY_BASE_COMMIT, "its base-commit, fetched from xen")
    assert ups.fetches() == 2
    git(ups.tree, "update-ref", "-d", "refs/bootbot/upstream/xen/staging")   # as if the fetch had not got it
    git(ups.tree, "reflog", "expire", "--expire=now", "--all")
    git(ups.tree, "gc", "-q", "--prune=now")
    guessed = ups.find(second, site)   # within refetch_seconds of the last fetch for a base: none more
    assert ups.fetches() == 2 and guessed.by != BY_BASE_COMMIT


def test_a_series_without_base_commit_goes_where_its_files_are_on_the_newest_followed_branch(ups):
    """Made on staging's head, which master and stable-4.21 never had; found by its blobs."""
    ups.commit("arch/x86/boot/main.c", "int main;\nint newer;\n", "x86/boot: newer")
    made_on = ups.commit("Documentation/old.rst", "newer\n", "docs: newer")
    ups.push()
    mails = ups.series("s", with_base=False)
    still = ups.commit("Documentation/old.rst", "newest\n", "docs: newest")   # main.c as the series found it
    ups.push()
    site = ups.site(ups.following())
    base = ups.find(mails, site)   # the periodic fetch is due: the tree was never fetched
    assert (base.commit, base.by, base.known) == (still, BY_BLOBS, True) and base.commit != made_on
    assert base.how == "the newest commit of xen/staging holding the 1 files as the patches found them"


def test_a_backport_is_found_on_its_stable_branch_though_staging_is_newer(ups):
    git(ups.dev, "checkout", "-q", "-b", "stable")
    on_stable = ups.commit("arch/x86/boot/main.c", "int main;\nint stable;\n", "x86/boot: stable only")
    git(ups.dev, "push", "-q", str(ups.bare), "HEAD:refs/heads/stable-4.21")
    mails = ups.series("backport", with_base=False)
    git(ups.dev, "checkout", "-q", "staging")
    ups.commit("arch/x86/boot/main.c", "int main;\nint staging;\n", "x86/boot: staging moves on")
    ups.push()
    base = ups.find(mails, ups.site(ups.following()))
    assert (base.commit, base.by) == (on_stable, BY_BLOBS) and "xen/stable-4.21" in base.how


@pytest.mark.parametrize("tag, branch", [("for-4.21", "stable-4.21"), ("v2 4.21", "stable-4.21"),
                                         ("for-4.22", "staging"), ("", "staging")])
def test_subject_tags_name_the_branch_when_nothing_else_says(ups, tag, branch):
    """No base-commit, and files as no followed commit holds them: the tag's branch, or staging;
    either is a guess."""
    (ups.dev / "arch/x86/boot/main.c").write_text("int main;\nint local_only;\n")
    git(ups.dev, "commit", "-q", "-am", "x86/boot: never pushed")
    mails = ups.series("s", with_base=False, subject_tag=tag)
    git(ups.dev, "reset", "-q", "--hard", "HEAD~1")
    git(ups.dev, "checkout", "-q", "-b", "stable")
    stable_head = ups.commit("Documentation/old.rst", "stable\n", "docs: stable")
    git(ups.dev, "push", "-q", str(ups.bare), "HEAD:refs/heads/stable-4.21")
    staging_head = git(ups.bare, "rev-parse", "staging").strip()
    base = ups.find(mails, ups.site(ups.following()))
    wanted = stable_head if branch == "stable-4.21" else staging_head
    assert (base.commit, base.by, base.known) == (wanted, BY_TAG if tag else BY_BRANCH, False)
    assert sorted(base.tried) == ["xen/master", "xen/stable-4.21", "xen/staging"]
    assert "guessed: the head of xen/" + branch in base.how
    assert ("as its subject tag [" + tag.split(" ")[-1] + "] says" in base.how) == bool(tag)


def test_a_tree_given_by_hand_is_checked_from_its_head_and_never_fetched_into(ups):
    ups.commit("Documentation/old.rst", "newer\n", "docs: newer")
    ups.push()
    mails = ups.series("s")
    refs = git(ups.tree, "for-each-ref")
    base = ups.find(mails, ups.site(None, branch=None))
    head = git(ups.tree, "rev-parse", "HEAD").strip()
    assert (base.commit, base.by) == (head, BY_BLOBS) and " of HEAD " in base.how   # its files as they were
    assert git(ups.tree, "for-each-ref") == refs and not ups.logs.exists()


def test_the_tree_s_own_branches_and_refs_are_never_moved(ups):
    ups.commit("Documentation/old.rst", "newer\n", "docs: newer")
    ups.push()
    own = git(ups.tree, "for-each-ref", "refs/heads", "refs/remotes", "refs/tags")
    head = git(ups.tree, "rev-parse", "HEAD")
    upstream.fetch("xen", ups.tree, ups.following(), ups.logs)
    assert git(ups.tree, "for-each-ref", "refs/heads", "refs/remotes", "refs/tags") == own
    assert git(ups.tree, "rev-parse", "HEAD") == head
    followed = {b.name for b in upstream.followed(ups.tree)}
    assert followed == {"xen/staging", "xen/master", "xen/stable-4.21"}


def test_a_branch_gone_upstream_is_gone_from_the_followed_ones(ups):
    upstream.fetch("xen", ups.tree, ups.following(), ups.logs)
    git(ups.bare, "branch", "-q", "-D", "stable-4.21")
    upstream.fetch("xen", ups.tree, ups.following(), ups.logs)
    assert {b.name for b in upstream.followed(ups.tree)} == {"xen/staging", "xen/master"}


def test_an_upstream_that_cannot_be_reached_is_recorded_and_the_base_still_guessed(ups):
    mails = ups.series("s")
    following = Following((Upstream("xen", f"file://{ups.root}/gone.git", ("staging",)),), 900, 60, 300)
    base = ups.find(mails, ups.site(following, branch="master"))
    assert base.by == BY_BASE_COMMIT   # the tree has it: the series was made on the clone's commit
    record = upstream.log_of(ups.logs, "xen", ups.tree)["xen"]
    assert record["error"].startswith(f"git fetch file://{ups.root}/gone.git: ") and record["succeeded"] is None
    assert record["fetches"] == record["failures"] == 1


def test_a_fetch_that_hangs_is_stopped_at_its_limit_and_recorded(ups):
    """A git server that accepts and never answers: the fetch ends at fetch_timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        following = Following((Upstream("xen", f"git://127.0.0.1:{silent.getsockname()[1]}/xen.git",
                                        ("staging",)),), 900, 2, 300)
        records = upstream.fetch("xen", ups.tree, following, ups.logs)
    assert records["xen"]["error"].endswith("stopped after 2 s") and records["xen"]["seconds"] < 30


def test_a_base_commit_or_a_link_that_names_another_remote_is_never_fetched(ups):
    """Only configured upstreams are fetched: a mail's base-commit line naming a URL, or a Link:
    to a git server, reaches nothing."""
    with socket.socket() as hostile:
        hostile.bind(("127.0.0.1", 0))
        hostile.listen()
        hostile.setblocking(False)
        url = f"git://127.0.0.1:{hostile.getsockname()[1]}/evil.git"
        mails = ups.series("s")
        text = mails.read_text()
        text = text.replace("base-commit: ", f"base-commit: {url} ").replace(
            "Signed-off-by:", f"Link: {url}\nSigned-off-by:")
        mails.write_text(text)
        base = ups.find(mails, ups.site(ups.following()))
        with pytest.raises(BlockingIOError):
            hostile.accept()   # nobody knocked
    assert base.by == BY_BLOBS and ups.fetches() == 1   # the periodic fetch of xen.git alone


def test_the_periodic_fetch_runs_when_due_only(ups):
    following = ups.following(every=3600)
    upstream.keep_current("xen", ups.tree, following, ups.logs)
    upstream.keep_current("xen", ups.tree, following, ups.logs)
    assert ups.fetches() == 1
    upstream.keep_current("xen", ups.tree, ups.following(every=0), ups.logs)
    assert ups.fetches() == 2
    log = json.loads((ups.logs / "xen.json").read_text())
    assert log["path"] == str(ups.tree) and set(log["upstreams"]["xen"]) >= {"fetched", "succeeded", "error"}


def test_fetches_of_one_tree_at_once_take_turns_and_the_second_finds_the_first_s(ups):
    following = ups.following(every=3600)
    done = []
    threads = [threading.Thread(target=lambda: done.append(upstream.keep_current("xen", ups.tree, following,
                                                                                   ups.logs))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(done) == 2 and ups.fetches() == 1


def test_a_tree_that_is_not_one_is_a_lab_error(ups):
    with pytest.raises(LabError, match="not a git tree"):
        base_module.find(Site("xen", ups.root / "nothing", "staging"), series_module.read_mbox(ups.series("s")),
                         ups.logs)


def test_a_default_branch_nowhere_is_a_lab_error(ups):
    with pytest.raises(LabError, match="has no branch no-such, followed or its own"):
        ups.find(ups.series("s", with_base=False), ups.site(None, branch="no-such"))


def test_the_base_guess_ignores_files_an_earlier_patch_made(tmp_path):
    """Patch 1 creates a file and patch 2 changes it: patch 2's blob is patch 1's work, which no
    commit of the tree holds; the guess goes by the other files."""
    series_module.configure_b4("http://127.0.0.1:9/unused")
    repo = make_repo(tmp_path)
    made_on = git(repo, "rev-parse", "HEAD").strip()
    (repo / "arch/x86/boot/new.c").write_text("int made;\n")
    (repo / "arch/x86/boot/main.c").write_text("int main;\nint step;\n")
    git(repo, "add", "arch/x86/boot/new.c")
    git(repo, "commit", "-q", "-am", "x86/boot: make new.c")
    (repo / "arch/x86/boot/new.c").write_text("int made;\nint changed;\n")
    git(repo, "commit", "-q", "-am", "x86/boot: change new.c")
    made = git(repo, "format-patch", "-o", str(tmp_path / "p"), f"{made_on}..HEAD").split()
    git(repo, "reset", "-q", "--hard", made_on)
    series = series_module.read_mbox(mbox(tmp_path / "s.mbox", [Path(m) for m in made]))
    assert [path for path, _ in series.blobs] == ["arch/x86/boot/main.c"]
    base = base_module.find(Site("linux", repo, "master"), series, tmp_path / "trees")
    assert (base.commit, base.by) == (made_on, BY_BLOBS)
