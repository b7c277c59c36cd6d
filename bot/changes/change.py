"""What a check checks: a base and an ordered list of patches. A mailed series' patches are
applied with `git am`; a branch's are its commits, as they are."""
from __future__ import annotations

import base64
from dataclasses import asdict, dataclass

from bot.words import COMMITS, MAILED


@dataclass(frozen=True)
class Patch:
    index: int          # 1 is the first patch
    subject: str
    msgid: str          # a mailed patch's Message-ID; a commit's Link: posting, else ""
    author: str
    files: tuple[str, ...]
    blobs: tuple[tuple[str, str], ...] = ()   # (path, its blob before the patch, abbreviated)
    commit: str = ""    # a branch's commit
    committer: str = ""
    link: str = ""      # a commit's Link: (its posting on lore)


@dataclass(frozen=True)
class Change:
    subject: str
    version: int
    patches: tuple[Patch, ...]
    base_commit: str | None
    cover_msgid: str | None = None
    am_messages: tuple[bytes, ...] = ()   # a mailed series: what `git am` takes, one per patch, trailers applied
    branch: str = ""                      # a branch's commits: where they are ("tip x86/boot")
    tags: tuple[str, ...] = ()            # a mailed series' subject tags but for PATCH, vN, M/N ("for-4.21")

    @property
    def kind(self) -> str:
        """MAILED (a series, applied with `git am`) or COMMITS (a branch's, taken as they are)."""
        return COMMITS if self.branch else MAILED

    @property
    def commits(self) -> list[str]:
        """The commits of a branch's change; empty for a mailed series (they come from `git am`)."""
        return [p.commit for p in self.patches if p.commit]

    @property
    def files(self) -> list[str]:
        return sorted({f for patch in self.patches for f in patch.files})

    @property
    def blobs(self) -> list[tuple[str, str]]:
        """Each file the series changes, with the blob it had before the series: what its base held.
        Not a file an earlier patch made or renamed: its blob is that patch's work."""
        first: dict[str, str] = {}
        touched: set[str] = set()
        for patch in self.patches:
            for path, blob in patch.blobs:
                if path not in touched:
                    first.setdefault(path, blob)
            touched.update(patch.files)
        return list(first.items())

    @property
    def am_mbox(self) -> bytes:
        return b"".join(self.am_messages)


def to_json(change: Change) -> dict:
    """The change as a worker is sent it: JSON, the mails as base64."""
    data = asdict(change)
    data["am_messages"] = [base64.b64encode(m).decode() for m in change.am_messages]
    return data


def from_json(data: dict) -> Change:
    patches = tuple(Patch(**{**p, "files": tuple(p["files"]), "blobs": tuple(map(tuple, p["blobs"]))})
                    for p in data["patches"])
    return Change(**{**data, "patches": patches, "am_messages": tuple(map(base64.b64decode, data["am_messages"])),
                     "tags": tuple(data.get("tags", ()))})
