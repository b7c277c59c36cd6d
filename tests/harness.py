"""What the tests share: where things are; bootbot's command line, run as a user runs it (and
with some of its functions made to fail); the labs that put real servers around the list bot
(an archive, an SMTP server, a broker and workers) and the series posted to them."""
from __future__ import annotations

import email.utils
import mailbox
import re
import sqlite3
import subprocess
import sys
import threading
import time
from email.policy import default
from pathlib import Path

from inbox import PublicInbox
from redis_server import RedisServer
from smtp_sink import SmtpSink
from tiny_tree import git, patches

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).with_name("data")
EXAMPLE = ROOT / "examples" / "pvh-regression.mbox"
LIST = "xen-devel@lists.example.org"
# Mail of the tests' own: a patch posted to the list, the bot's address and report, maintainers
SENDER = "bootbot <bootbot@example.org>"
REPORT_ID = "<bootbot-report-1@example.org>"
PATCH = b"""\
From: Jane Dev <jane@example.com>
To: xen-devel@lists.example.org
Subject: [PATCH v2 2/3] x86/boot: move the PVH entry
Date: Mon, 1 Jul 2024 10:00:00 +0000
Message-ID: <20240701100000.2-jane@example.com>
In-Reply-To: <20240701100000.0-jane@example.com>
References: <20240620090000.0-jane@example.com>
 <20240701100000.0-jane@example.com>

The patch.
"""
MAINTAINERS = ["Ann Maintainer <ann@example.org>", "bob@lists.example.org"]
BOT_ADDRESSES = ["bootbot@example.net"]
MAIL = DATA / "mail"   # malformed mail that the bot must read without harm


# The bot, with functions wrapped to kill it: argv is [spec ..., "--", bootbot's arguments]. A
# spec "module:function:n" kills it (SIGKILL) at the function's n-th call; ":raise" raises
# RuntimeError there instead, as a bug would; ":redis=PORT" shuts down the Redis there first.
KILLER = """
import importlib, os, signal, sys
from bot import cli
specs = sys.argv[1:sys.argv.index("--")]
for spec in specs:
    module_name, name, nth, *how = spec.split(":")
    module = importlib.import_module(module_name)
    owner, attr = (getattr(module, name.split(".")[0]), name.split(".")[1]) if "." in name else (module, name)
    real, calls = getattr(owner, attr), []
    def wrapped(*args, real=real, calls=calls, nth=int(nth), how=how, **kwargs):
        calls.append(1)
        if len(calls) == nth and how == ["raise"]:
            raise RuntimeError("injected")
        if len(calls) == nth and how:
            import redis
            redis.Redis(port=int(how[0].removeprefix("redis="))).shutdown()   # returns once it is gone
        elif len(calls) == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    setattr(owner, attr, wrapped)
sys.exit(cli.main(sys.argv[sys.argv.index("--") + 1:]))
"""


def command(*args: str, config: Path | None = None, wrapped: tuple[str, ...] = (),
            image: list[str] | None = None) -> list[str]:
    """bootbot's command line: `--config` first, as a user types it; `wrapped`: specs of KILLER;
    `image`: the command that runs bootbot in the container image instead."""
    head = image or ([sys.executable, "-c", KILLER, *wrapped, "--"] if wrapped else [sys.executable, "-m", "bot.cli"])
    return [*head, *(["--config", str(config)] if config else []), *args]


def cli(*args: str, config: Path | None = None, wrapped: tuple[str, ...] = (), cwd: Path = ROOT,
            timeout: float = 600, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """bootbot run to its end, its output kept; every run bounded by `timeout`."""
    return subprocess.run(command(*args, config=config, wrapped=wrapped), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, check=check)


def start(*args: str, config: Path | None = None, wrapped: tuple[str, ...] = (), image: list[str] | None = None,
          stderr=subprocess.PIPE) -> subprocess.Popen:
    """bootbot running on (serve, web, worker), in a session of its own, so that a kill takes its
    make and QEMU too, as systemd does with a service."""
    return subprocess.Popen(command(*args, config=config, wrapped=wrapped, image=image), cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


def reply_to(parent: bytes, sender: str, body: str, msgid: str) -> bytes:
    parsed = email.message_from_bytes(parent, policy=default)
    return (f"From: {sender}\nTo: {LIST}\nSubject: Re: {parsed['Subject']}\nMessage-ID: <{msgid}>\n"
            f"In-Reply-To: {parsed['Message-ID']}\nReferences: {parsed.get('References', '')} {parsed['Message-ID']}\n"
            f"Date: {email.utils.formatdate()}\n\n{body}").encode()


def ids(header) -> list[str]:
    """The Message-IDs in a header, however it was folded."""
    return re.findall(r"<[^<>\s]+>", str(header or ""))


def posted(mbox: Path) -> list[bytes]:
    return [m.as_bytes() for m in mailbox.mbox(mbox)]


class Lab:
    """An archive, an SMTP sink and a bot configuration pointing at both."""

    def __init__(self, root: Path, tree: Path, reply_on: list[str], workspaces: Path, xen: Path | None = None):
        self.inbox = PublicInbox(root / "archive", address=LIST)
        self.sink = SmtpSink()
        self.sink.start()
        self.state = root / "state"
        self.config = root / "bot.toml"
        self.config.write_text(f"""
[state]
dir = "{self.state}"
[archive]
url = "{self.inbox.serve()}"
[[sources]]
name = "xen-devel"
kind = "inbox"
url = "{self.inbox.url}"
list = "{LIST}"
[trees.linux]
path = "{tree}"
upstream = []
[trees.xen]
path = "{xen or ''}"
branch = "master"
upstream = []
[build]
dir = "{workspaces}"
[mail]
from = "bootbot <bootbot@example.org>"
smtp = "{self.sink.url}"
reply_on = {reply_on!r}
retry_seconds = [0]
moderate = false
[commands]
maintainers = ["mia@example.org"]
require_dkim = false
[poll]
interval_seconds = 1
""".replace("'", '"'))

    def poll(self) -> subprocess.CompletedProcess:
        done = cli("poll", "--once", config=self.config, timeout=1200)
        self.log = done.stderr
        return done

    def start(self, *command: str, log=subprocess.PIPE) -> subprocess.Popen:
        return start(*command, config=self.config, stderr=log)

    def replies(self, count: int, timeout: float = 10, bot: subprocess.Popen | None = None,
                log: Path | None = None) -> list:
        """The mail received once `count` replies are in. Fails at once when none can come (the
        bot process `bot` exited, a job failed or ended in a lab error), with the bot's log:
        `log`, else what the last poll said."""
        try:
            return self.sink.wait_for(count, timeout, lambda: self.why_no_reply(bot))
        except AssertionError as e:
            said = log.read_text() if log else getattr(self, "log", "(no poll yet)")
            raise AssertionError(f"{e}\n--- the bot's log, last lines ---\n"
                                 + "\n".join(said.splitlines()[-60:])) from None

    def why_no_reply(self, bot: subprocess.Popen | None) -> str | None:
        if bot is not None and bot.poll() is not None:
            return f"the bot exited with {bot.returncode}"
        if not (self.state / "bootbot.sqlite3").exists():
            return None
        with self.db() as db:
            try:
                stuck = db.execute("SELECT id, state, verdict, error FROM job WHERE state = 'failed' "
                                   "OR error IS NOT NULL OR verdict = 'error'").fetchone()
            except sqlite3.OperationalError:   # the bot has not made its tables yet
                return None
        return stuck and f"job {stuck[0]}: {stuck[1]}, verdict {stuck[2]}, error {stuck[3]}"

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.state / "bootbot.sqlite3")

    def close(self) -> None:
        self.sink.stop()
        self.inbox.close()


def refused(lab, name: str) -> list[Path]:
    """A three-patch series on the tiny tree, its own by content, cover and subject: refused
    (max_patches = 2), so answered at once."""
    mails = patches(lab.repo, lab.root / name, 1, count=3, extra=f"_{name}")
    for mail in mails:
        mail.write_text(mail.read_text().replace("<cover-v1.", f"<cover-{name}.")
                        .replace("*** SUBJECT HERE ***", f"x86/boot: series {name}"))
    return mails


class Faulty(Lab):
    """test_bot's lab, on a tree that is no git tree, refusing series of more than two patches:
    a one-patch series gets as far as the tree and fails there with LabError, which is no
    verdict; a three-patch series is refused (a real verdict, mailed) before the tree is touched.
    Given a `tree`, the series get that far."""

    def __init__(self, root: Path, max_attempts: int = 2, tree: Path | None = None):
        (root / "not-a-tree").mkdir(parents=True)
        super().__init__(root, tree or root / "not-a-tree", ["refused"], root / "workspaces")
        text = self.config.read_text()
        assert "[poll]\n" in text and "[limits]" not in text
        self.config.write_text(text.replace("[poll]\n", f"[poll]\nmax_attempts = {max_attempts}\n")
                               + "[limits]\nmax_patches = 2\n")

    def post(self, mails: list[Path]) -> None:
        for mail in mails:
            self.inbox.deliver(mail.read_bytes().split(b"\n", 1)[1])   # without the mbox From_ line

    def jobs(self) -> list[tuple]:
        with self.db() as db:
            return db.execute("SELECT id, state, attempts, verdict, error FROM job ORDER BY id").fetchall()

    def states(self) -> list[tuple]:
        with self.db() as db:
            return db.execute("SELECT state, attempts FROM job ORDER BY id").fetchall()

    def count(self, table: str) -> int:
        with self.db() as db:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


VISIBILITY = 5   # seconds before a job taken by a killed worker goes to another


class Worker:
    """`bootbot worker` as its own process group, its log in a file; ready once it says so."""

    def __init__(self, config: Path, name: str, wrapped: tuple[str, ...] = (), image: list[str] | None = None,
                 ready_seconds: float = 60):
        self.name, self.log = name, config.parent / f"{name}.log"
        self.process = start("worker", config=config, wrapped=wrapped, image=image, stderr=subprocess.PIPE)
        self.ready, self.said_ready = threading.Event(), False
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.ready.wait(ready_seconds) or not self.said_ready:
            self.stop()
            raise AssertionError(f"worker {name} did not say it is ready within {ready_seconds} s:\n"
                                 + self.log.read_text()[-3000:])

    def _drain(self) -> None:
        with self.log.open("w") as log:
            for line in self.process.stderr:
                log.write(line)
                log.flush()
                if f"worker {self.name} ready" in line:
                    self.said_ready = True
                    self.ready.set()
        self.ready.set()   # it exited: not waited for

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


class Queued(Lab):
    """test_bot's lab on the tiny tree, with a Redis broker and workers of its own."""

    def __init__(self, root: Path, repo: Path):
        super().__init__(root, repo, ["refused"], root / "workspaces")
        self.root, self.repo, self.workers, self.said = root, repo, [], []
        self.redis = RedisServer(root / "redis")
        self.config.write_text(self.config.read_text() + self.shared())

    def shared(self) -> str:
        """What the bot and its workers are set alike: the broker, and series of three refused."""
        return f"""
[limits]
max_patches = 2
[queue]
broker = "{self.redis.url}"
visibility_seconds = {VISIBILITY}
heartbeat_seconds = 1
"""

    def worker(self, name: str, entries: list[str] | None = None, wrapped: tuple[str, ...] = (),
               image: list[str] | None = None, accel: str = "tcg", broken: bool = False) -> Worker:
        """A worker with its own state, workspaces and clone of the tree, as another machine;
        `broken`: its tree is no git tree, so that a check that reaches it fails in its lab."""
        home = self.root / name
        if broken:
            (home / "linux").mkdir(parents=True)
        else:
            git(self.root, "clone", "-q", str(self.repo), str(home / "linux"))
        config = home / "worker.toml"
        config.write_text(f"""
[state]
dir = "{home / 'state'}"
[trees.linux]
path = "{home / 'linux'}"
upstream = []
[trees.xen]
path = ""
[build]
dir = "{home / 'workspaces'}"
[boot]
accel = "{accel}"
[worker]
name = "{name}"
entries = {entries or []}
""".replace("'", '"') + self.shared())
        self.workers.append(Worker(config, name, wrapped, image))
        return self.workers[-1]

    def post(self, name: str) -> None:
        for mail in refused(self, name):
            self.inbox.deliver(mail.read_bytes().split(b"\n", 1)[1])

    def answered(self, count: int, seconds: float = 120) -> list:
        """Cycles of the bot until `count` replies are in, within `seconds`."""
        self.cycles_until(lambda: len(self.sink.received) >= count, seconds, f"{count} replies")
        return self.sink.received

    def cycles_until(self, done, seconds: float, what: str) -> None:
        """Cycles of the bot (each sends what waits and takes the answers in) until `done()`."""
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, f"no {what} in {seconds} s; the bot said:\n" + self.log[-4000:] \
                + "".join(w.log.read_text()[-2000:] for w in self.workers)
            assert self.poll().returncode == 0, self.log

    def poll(self) -> subprocess.CompletedProcess:
        done = super().poll()
        self.said.append(done.stderr)
        self.log = "".join(self.said)   # all it said, since its first cycle
        return done
        return self.sink.received

    def jobs(self) -> list[tuple]:
        with self.db() as db:
            return db.execute("SELECT id, state, attempts, verdict, result, waiting FROM job ORDER BY id").fetchall()

    def status(self) -> str:
        return cli("status", config=self.config, timeout=60, check=True).stdout

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.redis.stop()
        super().close()


def follow(config: Path, kind: str, url: str, branch: str, **keys) -> None:
    """The lab's [trees.KIND] made to follow `url`'s `branch`, with these keys (fetch_seconds ...)."""
    text = config.read_text()
    start = text.index(f"[trees.{kind}]\n")
    end = text.index("upstream = []\n", start) + len("upstream = []\n")
    path = text[start:end].split("\n")[1]
    settings = "".join(f"{key} = {value}\n" for key, value in keys.items())
    config.write_text(text[:start] + f'[trees.{kind}]\n{path}\nbranch = "{branch}"\n{settings}'
                      f'[[trees.{kind}.upstream]]\nname = "up"\nurl = "{url}"\nbranches = ["{branch}"]\n' + text[end:])
