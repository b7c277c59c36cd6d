"""Checks on workers, against a real redis-server on loopback and real `bootbot worker`s, each with
its own configuration, state and tree, as separate machines would have. The series are refused
on the tiny tree (more patches than allowed), so each check is a real verdict without a build;
test_image.py runs a worker from the container image."""
from __future__ import annotations

import io
import json
import tarfile

import pytest
from git_server import GitServer
from harness import VISIBILITY, Queued, cli
from tiny_tree import git, patches

from bot import folders


@pytest.fixture
def lab(tmp_path, repo):
    made = Queued(tmp_path, repo)
    yield made
    made.close()


def test_series_are_checked_on_workers_and_answered_once(lab):
    lab.worker("w1")
    lab.worker("w2")
    lab.post("one")
    lab.post("two")
    replies = lab.answered(2)
    assert sorted(r.message["Subject"] for r in replies) == \
        ["Re: [PATCH v1 0/3] x86/boot: series one", "Re: [PATCH v1 0/3] x86/boot: series two"]
    assert "refused" in replies[0].message.get_body().get_content()
    jobs = lab.jobs()
    assert [(state, attempts, verdict) for _, state, attempts, verdict, _, _ in jobs] == [("done", 1, "refused")] * 2
    for *_, folder, _ in jobs:   # the worker's result folder, now the daemon's, where pages and mail read it
        assert (lab.state / "results" / folder / "outcome.json").is_file()
        assert any((lab.root / w / "state" / "results" / folder).is_dir() for w in ("w1", "w2"))
    assert not (lab.root / "w1" / "state" / "bootbot.sqlite3").exists()   # workers keep no bot database
    lab.poll()
    assert len(lab.sink.received) == 2
    said = lab.status()
    assert "worker w1 on " in said and "worker w2 on " in said and "last heartbeat" in said
    assert "offers linux/bios linux/efi linux/pvh linux/xen-pv linux/xen-pvh (tcg)" in said, said
    assert sum(int(line.split(", ")[1].split()[0]) for line in said.splitlines()
               if line.startswith("worker ")) == 2, said   # "N checked" between them


def test_a_worker_killed_mid_check_leaves_its_job_to_another(lab):
    killed = lab.worker("w1", wrapped=("bot.folders:write:1",))   # SIGKILL as it writes the outcome
    lab.post("one")
    assert lab.poll().returncode == 0, lab.log
    assert killed.process.wait(timeout=60) == -9, killed.log.read_text()
    assert lab.jobs()[0][1:3] == ("sent", 1)
    lab.worker("w2")
    replies = lab.answered(1, seconds=VISIBILITY + 90)
    assert lab.jobs()[0][1:4] == ("done", 1, "refused")   # the broker gave it again, not the bot
    assert "job 1: answered by w2" in lab.log
    lab.poll()
    assert len(replies) == 1 and len(lab.sink.received) == 1


def test_a_check_that_kills_every_worker_is_one_failed_attempt(lab):
    lab.config.write_text(lab.config.read_text().replace("[poll]\n", "[poll]\nmax_attempts = 2\n"))
    dying = [lab.worker("w1", wrapped=("bot.folders:write:1",))]
    lab.post("one")
    assert lab.poll().returncode == 0, lab.log
    assert dying[0].process.wait(timeout=60) == -9
    dying.append(lab.worker("w2", wrapped=("bot.folders:write:1",)))   # the broker gives it again
    assert dying[1].process.wait(timeout=VISIBILITY + 60) == -9
    lab.worker("w3")   # its third start: given up there, so the bot sends it again as attempt 2
    lab.answered(1, seconds=VISIBILITY + 90)
    assert "job 1: attempt 1 of 2 failed, tried again next cycle: on w3: it was started " \
           "2 times by workers that died in it" in lab.log
    assert lab.jobs()[0][1:4] == ("done", 2, "refused")
    lab.poll()
    assert len(lab.sink.received) == 1


def test_a_broker_restarted_mid_cycle_loses_and_doubles_nothing(lab):
    lab.worker("w1")
    lab.worker("w2")
    lab.post("one")
    lab.post("two")
    # the broker shuts down as the bot sends the second job: the first is in Redis, the second is not
    cycle = cli("poll", "--once", config=lab.config, wrapped=(f"bot.queue.dispatch:Dispatch.send:2:redis="
                                                                   f"{lab.redis.port}",), timeout=120)
    assert cycle.returncode == 0, cycle.stderr
    assert "the broker is unreachable, jobs wait here until it is back" in cycle.stderr
    lab.redis.process.wait(timeout=30)
    lab.post("three")   # the bot goes on polling with the broker away: the job waits in its database
    assert lab.poll().returncode == 0, lab.log
    assert [job[1] for job in lab.jobs()] == ["sent", "queued", "queued"]
    said = lab.status()
    assert "job 3: queued, attempt 0; waits: the broker is unreachable" in said
    assert f"broker {lab.redis.url}: unreachable" in said
    lab.redis.start()   # the same port and data: the first job is still there
    replies = lab.answered(3)
    assert sorted(r.message["Subject"].split(": ")[-1] for r in replies) == \
        ["series one", "series three", "series two"]
    assert [(state, attempts) for _, state, attempts, *_ in lab.jobs()] == [("done", 1)] * 3
    lab.poll()
    assert len(lab.sink.received) == 3


def test_a_job_no_worker_can_run_waits_and_says_so(lab):
    lab.worker("w1", entries=["linux/bios", "linux/efi"])
    lab.post("one")   # arch/x86/boot: bios, efi, xen-pv and xen-pvh
    assert lab.poll().returncode == 0, lab.log
    assert lab.jobs()[0][1:3] == ("queued", 0)
    said = lab.status()
    assert "job 1: queued, attempt 0; waits: no worker offers entry:linux/xen-pv, entry:linux/xen-pvh" in said, said
    assert "worker w1 on " in said and ": idle, 0 checked" in said and "offers linux/bios linux/efi (tcg)" in said
    lab.worker("w2")
    lab.answered(1)
    assert lab.jobs()[0][1:4] == ("done", 1, "refused")
    assert "job 1: answered by w2" in lab.log


def test_a_worker_needs_a_broker_and_known_entries(lab, tmp_path):
    lone = tmp_path / "lone.toml"
    lone.write_text(f'[state]\ndir = "{tmp_path / "lone"}"\n')
    done = cli("worker", config=lone, timeout=60)
    assert (done.returncode, done.stderr) == (2, "bootbot: a worker needs queue.broker: the Redis the list bot "
                                                 "sends its jobs through\n")
    with pytest.raises(AssertionError, match="worker.entries: no configured tree has linux/pvhh"):
        lab.worker("w1", entries=["linux/pvhh"])


def test_a_job_whose_workers_are_gone_goes_to_others_or_home(lab):
    dying = lab.worker("w1", wrapped=("bot.folders:write:1",))
    lab.post("one")
    lab.post("two")
    assert lab.poll().returncode == 0, lab.log
    assert dying.process.wait(timeout=60) == -9
    # workers of another kind (they offer KVM too): job 1 was taken by w1, job 2 waits in w1's queue
    lab.worker("w2", accel="kvm")
    lab.answered(2, seconds=VISIBILITY + 90)
    assert "job 2: attempt 1 of 3 failed, tried again next cycle: no worker of bootbot." in lab.log
    assert "job 2: answered by w2" in lab.log and "job 1: answered by w2" in lab.log
    # the operator takes the broker away: a job left on the workers' queue is checked here
    lab.workers.pop().stop()
    lab.post("three")
    assert lab.poll().returncode == 0 and lab.jobs()[2][1] == "queued"
    lab.config.write_text(lab.config.read_text().replace(f'broker = "{lab.redis.url}"', 'broker = ""'))
    lab.answered(3)
    assert lab.jobs()[2][1:4] == ("done", 1, "refused")


def test_a_result_folder_travels_whole_or_not_at_all(tmp_path):
    folder = folders.new_folder(tmp_path / "worker")
    (folder / "boots").mkdir()
    (folder / "boots" / "console.log").write_text("booted\n")
    (folder / "vmlinux").symlink_to("/vmlinuz")   # the worker's own kernel: not sent
    packed = folders.pack(folder)
    (tmp_path / "bot" / folder.name).mkdir(parents=True)   # a copy a crash left half-recorded
    unpacked = folders.unpack(packed, tmp_path / "bot")
    assert sorted(p.name for p in unpacked.rglob("*")) == ["boots", "console.log"]
    assert [p.name for p in (tmp_path / "bot").iterdir()] == [folder.name]   # nothing else left there
    with pytest.raises(ValueError, match="not a result folder"):
        folders.unpack(packed[:len(packed) // 2], tmp_path / "bot")   # cut short
    escaping = io.BytesIO()
    with tarfile.open(fileobj=escaping, mode="w:gz") as tar:
        tar.add(folder / "boots" / "console.log", arcname=f"{folder.name}/../../evil")
    with pytest.raises(ValueError, match="evil"):
        folders.unpack(escaping.getvalue(), tmp_path / "bot")
    assert not (tmp_path / "evil").exists()


def test_a_broker_that_is_no_redis_url_is_one_line(lab):
    lab.config.write_text(lab.config.read_text().replace(f'broker = "{lab.redis.url}"', 'broker = "http://x"'))
    done = lab.poll()
    assert (done.returncode, done.stderr) == (2, "bootbot: queue.broker 'http://x': a Redis URL is needed "
                                                 "(redis://HOST:PORT/DB)\n")


def test_a_branch_push_is_fetched_by_the_worker_that_checks_it(lab):
    server = GitServer(lab.root / "git")
    try:
        git(lab.root, "clone", "-q", "--bare", str(lab.repo), str(lab.root / "git" / "tip.git"))
        lab.config.write_text(lab.config.read_text().replace("[poll]\n", "[poll]\nmax_attempts = 1\n") + f"""
[[sources]]
name = "tip"
kind = "branch"
url = "{server.url('tip.git')}"
branch = "master"
tree = "linux"
""")
        assert lab.poll().returncode == 0, lab.log   # the branch's first sight
        worker = lab.worker("w1")   # its clone of the tree is older than the branch's new commit
        with (lab.repo / "arch/x86/boot/main.c").open("a") as f:
            f.write("int pushed;\n")
        git(lab.repo, "commit", "-q", "-am", "x86/boot: pushed")
        git(lab.repo, "push", "-q", str(lab.root / "git" / "tip.git"), "HEAD:master")
        head = git(lab.repo, "rev-parse", "HEAD").strip()
        lab.cycles_until(lambda: [job[1] for job in lab.jobs()] == ["done"], 120, "checked push")
    finally:
        server.close()
    # the tiny tree has no kernel to build: the worker fetched the commit and tried to build its base
    assert git(lab.root / "w1" / "linux", "rev-parse", "refs/bootbot/queue/fetched").strip() == head
    assert "job 1: checked, error" in worker.log.read_text()
    outcome = json.loads((lab.state / "results" / lab.jobs()[0][4] / "outcome.json").read_text())
    assert outcome["detail"][0] == "the base tree does not build"


def test_a_workers_lab_error_is_the_labs_and_raises_the_lab_alarm(lab):
    """A check that fails in a worker's lab counts as the lab's, as one failing here does: the
    operator hears of it (health.lab_errors, set to 1 here)."""
    text = lab.config.read_text().replace("[mail]\n", '[mail]\noperator = "ops@example.org"\n')
    lab.config.write_text(text + "[health]\nlab_errors = 1\n")
    lab.worker("w1", broken=True)
    for mail in patches(lab.repo, lab.root / "one", 1, count=1, cover=False):   # one patch: not refused
        lab.inbox.deliver(mail.read_bytes().split(b"\n", 1)[1])
    [alarm] = lab.answered(1)
    assert alarm.recipients == ["ops@example.org"]
    assert alarm.message["Subject"] == "bootbot alarm: the last 1 checks ended in lab errors, not verdicts"
    assert "job 1: attempt 1 of 3 failed, tried again next cycle: on w1: LabError: " in lab.log
    assert "lab errors in a row: 1" in lab.status()
