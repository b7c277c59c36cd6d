"""Refusing hostile series before anything is applied: anyone can post to the list, and the
bot applies and builds what they post. A refusal names the patch and the reason."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # not imported at run time: b4 comes with it, and `bootbot boot` needs none of it
    from bot.changes.change import Change
from bot.words import COMMITS

# Every path a git diff can write to, or claim to come from.
_PATHS = re.compile(rb"^(?:diff --git a/(\S+) b/(\S+)|(?:---|\+\+\+) (?:[ab]/)?(\S+)|"
                    rb"(?:rename|copy) (?:from|to) (.+))$", re.M)
_SYMLINK = re.compile(rb"^(?:new file mode|new mode) 120000$", re.M)
_BINARY = re.compile(rb"^(?:literal|delta) (\d+)$", re.M)


@dataclass(frozen=True)
class SeriesLimits:
    max_patches: int
    max_series_bytes: int
    max_binary_bytes: int


def refusal(series: Change, limits: SeriesLimits) -> str | None:
    """Why the series must not be applied, or None. A branch's commits are never refused: the
    operator chose the branch, and they are not applied from mail."""
    if series.kind == COMMITS:
        return None
    if len(series.patches) > limits.max_patches:
        return f"{len(series.patches)} patches, more than the {limits.max_patches} allowed"
    size = sum(map(len, series.am_messages))
    if size > limits.max_series_bytes:
        return f"{size} bytes of patches, more than the {limits.max_series_bytes} allowed"
    for patch, message in zip(series.patches, series.am_messages, strict=True):
        reason = _patch_refusal(message, limits)
        if reason:
            return f"patch {patch.index} ({patch.subject}): {reason}"
    return None


def _patch_refusal(message: bytes, limits: SeriesLimits) -> str | None:
    for match in _PATHS.finditer(message):
        for path in filter(None, match.groups()):
            reason = _path_refusal(path.decode("utf-8", "replace").strip())
            if reason:
                return reason
    if _SYMLINK.search(message):
        return "it creates a symbolic link"
    sizes = [int(n) for n in _BINARY.findall(message)]
    if sizes and max(sizes) > limits.max_binary_bytes:
        return f"a binary blob of {max(sizes)} bytes, more than the {limits.max_binary_bytes} allowed"
    return None


def _path_refusal(path: str) -> str | None:
    if path == "/dev/null":
        return None
    parts = path.strip('"').split("/")
    if path.startswith("/"):
        return f"it writes to an absolute path: {path}"
    if ".." in parts:
        return f"it writes outside the tree: {path}"
    if ".git" in parts:
        return f"it writes into git's own files: {path}"
    return None
