"""Tree kinds, read from checks/trees/<name>.toml: which series belong to one, how to configure
and build it, what the build yields, and the entries (checks/entries/<name>.toml) that boot it."""
from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from bot.boots import entry as entry_module
from bot.boots.accel import Probe
from bot.boots.entry import Entry, path_matches
from bot.boots.symbols import Symbols

MODES = ("real", "protected", "long")   # of the CPU, as [symbols] names them


@dataclass(frozen=True)
class Step:
    run: tuple[str, ...]    # an argument list; see checks/trees/linux.toml for its placeholders
    cwd: str | None         # where it runs; None: the worktree


@dataclass(frozen=True)
class TagRule:
    """A subject tag that names the branch a series is for ([[tags]]): the first of `branches`
    that the tree follows, the pattern's groups filled in (\\1)."""
    pattern: re.Pattern
    branches: tuple[str, ...]


@dataclass(frozen=True)
class Tree:
    name: str
    description: str
    paths: tuple[str, ...]            # a series belongs to it when all it touches is under these
    marks: tuple[str, ...]            # files only a tree of this kind has: how a tree's kind is known
    make: tuple[str, ...]
    configure: tuple[Step, ...]
    build: tuple[Step, ...]
    fragment: Path | None
    config: str | None                # what configuring leaves in the build folder
    artifacts: Mapping[str, str]      # file name: where the build leaves it, in the build folder
    symbols: Mapping[str, tuple[str, ...]]   # CPU mode: the artifacts whose symbols cover its code
    probe: Probe | None
    entries: Mapping[str, Entry]
    common_paths: tuple[str, ...]     # paths no entry names as its own that can break every entry
    not_built: tuple[str, ...] = ()   # paths the build never compiles (other architectures' code)
    tags: tuple[TagRule, ...] = ()    # subject tags that name the branch a series is for
    clone_filter: str = ""            # how `bootbot trees init` clones one ("blob:none": a partial clone)

    def owns(self, path: str) -> bool:
        return any(path_matches(pattern, path) for pattern in self.paths)

    def affected(self, files: list[str]) -> list[Entry]:
        """The entries a change to `files` can break: for each file, the entries that name it as
        their own, else, when it is under the common paths, every entry; none for a file the
        build never compiles."""
        hit: set[str] = set()
        for path in files:
            if self.unbuilt(path):
                continue
            own = {e.name for e in self.entries.values() if e.covers(path)}
            hit |= own or (set(self.entries) if any(path_matches(p, path) for p in self.common_paths) else set())
        return [e for e in self.entries.values() if e.name in hit]

    def unbuilt(self, path: str) -> bool:
        return any(path_matches(pattern, path) for pattern in self.not_built)

    def is_kind_of(self, tree: Path) -> bool:
        """Whether the git tree at `tree` is of this kind (it has the kind's marks)."""
        return bool(self.marks) and all((tree / mark).is_file() for mark in self.marks)

    def fragment_lines(self) -> list[str]:
        """The fragment's CONFIG_ lines: what every build of this kind must have set."""
        return [l for l in self.fragment.read_text().splitlines() if l.startswith("CONFIG_")] if self.fragment else []

    def symbols_of(self, artifacts: Mapping[str, Path], source: Path | None = None) -> Symbols:
        """The lookup of addresses in a build's `artifacts` (those it has of [symbols])."""
        return Symbols({mode: tuple((name, artifacts[name]) for name in names if name in artifacts)
                        for mode, names in self.symbols.items()}, source)

    def argv(self, step: Step, values: Mapping[str, str]) -> list[str]:
        """A step's arguments with the values filled in, "{make}" spliced."""
        argv = []
        for arg in step.run:
            argv += [a.format(**values) for a in self.make] if arg == "{make}" else [arg.format(**values)]
        return argv


def load(path: Path, entries_path: Path) -> Tree:
    data = tomllib.loads(path.read_text())
    probe = data.get("probe")
    if probe and "{accel}" not in probe["qemu"]:   # it boots under KVM, then under TCG to tell a broken build
        raise ValueError('[probe] qemu must say "-accel", "{accel}"')
    entries = tomllib.loads(entries_path.read_text()) if entries_path.exists() else {}
    for mode, names in data.get("symbols", {}).items():
        if mode not in MODES or not set(names) <= set(data["artifacts"]):
            raise ValueError(f"[symbols] {mode}: the modes are {', '.join(MODES)}, each a list of [artifacts] names")
    return Tree(
        name=path.stem, description=data.get("description", path.stem), paths=tuple(data["paths"]),
        marks=tuple(data.get("marks", ())), common_paths=tuple(entries.get("common", {}).get("paths", ())),
        not_built=tuple(entries.get("common", {}).get("not_built", ())),
        tags=tuple(map(_tag_rule, data.get("tags", ()))),
        clone_filter=data.get("clone_filter", ""),
        make=tuple(data.get("make", ())),
        configure=tuple(Step(tuple(s["run"]), s.get("cwd")) for s in data.get("configure", ())),
        build=tuple(Step(tuple(s["run"]), s.get("cwd")) for s in data["build"]),
        fragment=path.with_name(data["fragment"]) if data.get("fragment") else None, config=data.get("config"),
        artifacts=MappingProxyType(dict(data["artifacts"])),
        symbols=MappingProxyType({mode: tuple(names) for mode, names in data.get("symbols", {}).items()}),
        probe=probe and Probe(path.stem, tuple(probe["qemu"]), probe["banner"]),
        entries=MappingProxyType(entry_module.parse(entries, path.stem) if entries else {}))


def _tag_rule(rule: dict) -> TagRule:
    if set(rule) != {"pattern", "branches"}:   # a key meant for the kind, written after [[tags]] by mistake
        others = sorted(set(rule) - {"pattern", "branches"})
        raise ValueError(f"[[tags]] has pattern and branches, not {', '.join(others)}")
    return TagRule(re.compile(rule["pattern"], re.I), tuple(rule["branches"]))
