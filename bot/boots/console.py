"""Console verdicts: decide from a serial console, line by line, how a boot ended."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bot.verdicts.words import ERROR, FAIL, PASS, TIMEOUT

# Terminal control sequences firmware paints the screen with; they are noise in a verdict.
_ESCAPES = re.compile(r"\x1b(\[[0-9;=?]*[A-Za-z]|[()][0-9A-Za-z]|[A-Za-z])")
_PRINTK_TIME = r"^(?:\[\s*\d+\.\d+\]\s*)?"


@dataclass(frozen=True)
class Decision:
    status: str   # pass, fail, timeout or error
    reason: str   # the console line (or the fact) that decided it


@dataclass(frozen=True)
class Patterns:
    failure: re.Pattern
    image_refused: re.Pattern

    @classmethod
    def load(cls, path: Path) -> Patterns:
        data = tomllib.loads(path.read_text())
        kernel = "|".join(f"(?:{p})" for p in data["kernel"])
        anywhere = "|".join(f"(?:{p})" for p in data["anywhere"])
        return cls(
            failure=re.compile(f"{_PRINTK_TIME}(?:{kernel})|{anywhere}"),
            image_refused=re.compile("|".join(f"(?:{p})" for p in data["image_refused"])),
        )


def clean(line: str) -> str:
    return _ESCAPES.sub("", line).replace("\r", "").strip()


class Console:
    """Reads one boot's console and says as soon as the outcome is known.

    `success` matches the line that means the boot got where it had to; a failure pattern
    seen before it decides the boot as failed."""

    def __init__(self, success: re.Pattern, patterns: Patterns):
        self.success = success
        self.patterns = patterns
        self.last_line = ""

    def feed(self, raw: str) -> Decision | None:
        line = clean(raw)
        if not line:
            return None
        self.last_line = line
        if self.patterns.failure.search(line):
            return Decision(FAIL, line)
        if self.success.search(line):
            return Decision(PASS, line)
        return None

    def exited(self, returncode: int, stderr: str) -> Decision:
        """QEMU ended before the console decided anything."""
        complaint = clean(stderr.strip().splitlines()[-1]) if stderr.strip() else ""
        if self.patterns.image_refused.search(stderr):
            return Decision(FAIL, f"QEMU refused the kernel image: {complaint}")
        if returncode != 0:
            return Decision(ERROR, f"QEMU failed (exit {returncode}): {complaint or 'no message'}")
        return Decision(FAIL, "the machine reset or powered off before success "
                             f"(triple fault?); last line: {self.last_line or '(none)'}")

    def silent(self, seconds: float) -> Decision:
        return Decision(TIMEOUT, f"no console output for {seconds:g} s; "
                                f"last line: {self.last_line or '(none)'}")

    def overran(self, seconds: float) -> Decision:
        return Decision(TIMEOUT, f"not done after {seconds:g} s; last line: {self.last_line or '(none)'}")
