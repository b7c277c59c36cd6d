"""Console verdicts: decide from a serial console, line by line, how a boot ended, and keep the
block of lines that explains a failure (checks/console.toml declares the failure lines)."""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.words import ERROR, FAIL, PASS, TIMEOUT

# Terminal control sequences firmware paints the screen with; they are noise in a verdict.
_ESCAPES = re.compile(r"\x1b(\[[0-9;=?]*[A-Za-z]|[()][0-9A-Za-z]|[A-Za-z])")
# printk's prefix: the time, then CONFIG_PRINTK_CALLER's thread or CPU ("[   T1]", "[  C0]"); not
# Xen's own console timestamps, which follow "(XEN) ".
_PRINTK = r"(?<!\(XEN\) )\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])?\s*"
# a syslog daemon's relay of a kernel line: "Aug 29 09:51:01 host kernel: ", with busybox's
# facility.level before the tag ("host kern.warn kernel: "); the kernel's time, if any, follows
_SYSLOG = r"\b[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d \S+ (?:[a-z]+\.[a-z]+ )?kernel: "
_LEVEL = r"(?:<\d>)?"   # console_msg_format=syslog
_XEN = r"\(XEN\)\s+(?:\[[^\]]*\]\s+)?"
_BANNER = re.compile(rf"(?:{_PRINTK})?Linux version \d")
_TIMED = re.compile(_PRINTK)   # at a line's start: this kernel shows printk's time
BLOCK_LINES = 40   # of a failure's report, at most, quoted in the report


@dataclass(frozen=True)
class Decision:
    status: str                       # pass, fail, timeout or error
    reason: str                       # the console line (or the fact) that decided it
    kind: str = ""                    # of failure, as checks/console.toml names it
    block: tuple[str, ...] = ()       # the failure's report, from the deciding line on


@dataclass(frozen=True)
class Failure:
    kind: str
    pattern: str
    source: str
    ends: str | None
    opens: bool = False   # the line opens a report whose next failure line names it


@dataclass(frozen=True)
class Address:
    """A failure report's line that gives an instruction pointer as a bare number."""
    pattern: re.Pattern             # its group "pc" holds it, in hex
    mode: str                       # the CPU's mode: how the build's files look it up
    what: str                       # what happened, in the report's words
    exception: re.Pattern | None    # a line before it whose group "exception" names the fault


@dataclass(frozen=True)
class Patterns:
    failures: tuple[Failure, ...]
    timed: re.Pattern      # a failure line wherever a printk prefix (or syslog's), Xen's or none is needed
    bare: re.Pattern       # a kernel failure line at the start of a line, without a printk time
    image_refused: re.Pattern
    addresses: tuple[Address, ...] = ()

    @classmethod
    def load(cls, path: Path) -> Patterns:
        data = tomllib.loads(path.read_text())
        failures: list[Failure] = []
        groups: dict[str, list[str]] = {}   # per place, each failure's pattern as a group named after its index
        for where in ("kernel", "hypervisor", "anywhere"):
            groups[where] = []
            for table in data.get(where, ()):
                groups[where].append(f"(?P<f{len(failures)}>{table['pattern']})")
                failures.append(Failure(table["kind"], table["pattern"], table["source"], table.get("ends"),
                                        table.get("opens", False)))
        kernel, xen, anywhere = ("|".join(groups[w]) for w in ("kernel", "hypervisor", "anywhere"))
        return cls(tuple(failures),
                   re.compile(f"(?:{_PRINTK}|{_SYSLOG}){_LEVEL}(?:{kernel})|{_XEN}(?:{xen})|{anywhere}"),
                   re.compile(f"^{_LEVEL}(?:{kernel})"),
                   re.compile("|".join(f"(?:{p})" for p in data["image_refused"])),
                   tuple(Address(re.compile(a["pattern"]), a["mode"], a["what"],
                                 re.compile(a["exception"]) if a.get("exception") else None)
                         for a in data.get("address", ())))

    def failure(self, line: str, bare: bool) -> Failure | None:
        """The failure `line` reports, if any; `bare`: kernel lines may come without a time."""
        match = self.timed.search(line) or (self.bare.search(line) if bare else None)
        return self.failures[int(match.lastgroup[1:])] if match and match.lastgroup else None


def clean(line: str) -> str:
    return _ESCAPES.sub("", line).replace("\r", "").strip()


class Console:
    """Reads one boot's console and says as soon as the outcome is known.

    `success` matches the line that means the boot got where it had to; a failure line seen
    before it decides the boot as failed. After a failure, `more` takes the lines of its report."""

    def __init__(self, success: re.Pattern, patterns: Patterns):
        self.success = success
        self.patterns = patterns
        self.last_line = ""
        self.timed: bool | None = None   # whether the kernel's lines carry printk's time: known at its first line
        self.failed: Failure | None = None
        self.reason = ""        # the line of the failure's report that names it
        self.block: list[str] = []
        self.complete = False   # the failure's report is whole

    def feed(self, raw: str) -> Decision | None:
        line = clean(raw)
        if not line:
            return None
        self.last_line = line
        if self.timed is None and (_TIMED.match(line) or _BANNER.search(line)):
            self.timed = not line.startswith("Linux version")
        failure = self.patterns.failure(line, bare=not self.timed)
        if failure:
            self.failed, self.reason, self.block = failure, line, [line]
            return Decision(FAIL, line, failure.kind, (line,))
        if self.success.search(line):
            return Decision(PASS, line)
        return None

    def more(self, raw: str) -> bool:
        """Adds a line to the failure's report; False once the report is complete. A report
        that a line only opened ("cut here") is named by its first failure line."""
        line = clean(raw)
        if self.complete or not line:
            return not self.complete
        assert self.failed is not None, "more() follows a failure"
        self.block.append(line)
        named = self.failed.opens and self.patterns.failure(line, bare=not self.timed)
        if named and not named.opens:
            self.failed, self.reason = named, line
        ended = bool(self.failed.ends and re.search(self.failed.ends, line))
        self.complete = ended or len(self.block) >= BLOCK_LINES
        return not self.complete

    def with_block(self, decision: Decision) -> Decision:
        assert self.failed is not None, "a block follows a failure"
        return Decision(decision.status, self.reason, self.failed.kind, tuple(self.block))

    def exited(self, returncode: int, stderr: str, stopped: str = "") -> Decision:
        """QEMU ended before the console decided anything; `stopped`: why the guest stopped,
        when QMP said (guest-reset: with -no-reboot, a triple fault; guest-shutdown)."""
        complaint = clean(stderr.strip().splitlines()[-1]) if stderr.strip() else ""
        if self.patterns.image_refused.search(stderr):
            return Decision(FAIL, f"QEMU refused the kernel image: {complaint}", "image")
        if returncode != 0:
            return Decision(ERROR, f"QEMU failed (exit {returncode}): {complaint or 'no message'}")
        last = f"last line: {self.last_line or '(none)'}"
        if stopped == "guest-reset":
            return Decision(FAIL, f"the machine reset before success (a triple fault, or the kernel's reboot); {last}",
                            "reset")
        if stopped == "guest-shutdown":
            return Decision(FAIL, f"the machine powered off before success; {last}", "poweroff")
        return Decision(FAIL, f"the machine reset or powered off before success (triple fault?); {last}", "reset")

    def silent(self, seconds: float) -> Decision:
        return Decision(TIMEOUT, f"no console output for {seconds:g} s; "
                                 f"last line: {self.last_line or '(none)'}")

    def overran(self, seconds: float) -> Decision:
        return Decision(TIMEOUT, f"not done after {seconds:g} s; last line: {self.last_line or '(none)'}")


def judge_log(console: Console, text: str) -> tuple[Decision | None, int]:
    """A saved console judged as a boot's is read: lines end at newlines only (the runner's
    rule; a form feed is no line end); the decision, with its failure's report, and the number
    of the line that made it; (None, 0) when the log ends undecided."""
    lines: Iterable[str] = iter(text.split("\n"))
    for n, line in enumerate(lines, 1):
        decision = console.feed(line)
        if decision:
            if console.failed:
                for following in lines:
                    if not console.more(following):
                        break
                decision = console.with_block(decision)
            return decision, n
    return None, 0
