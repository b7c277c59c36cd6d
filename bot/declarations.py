"""Everything declared under checks/: the tree kinds and their entries, derived files and console
patterns. The code reads what to build, boot and look for from here; none of it names a tree or
an entry."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.boots import files as files_module
from bot.boots.console import Patterns
from bot.boots.entry import Entry
from bot.boots.files import Derivation
from bot.trees import tree as tree_module
from bot.trees.tree import Tree
from bot.words import LabError

CHECKS = Path(__file__).resolve().parents[1] / "checks"


@dataclass(frozen=True)
class Selection:
    """What a change calls for: its tree, and the entries it can break (none: `reason` says why)."""
    tree: Tree | None
    entries: list[Entry] = field(default_factory=list)
    reason: str = ""


@dataclass(frozen=True)
class Declarations:
    folder: Path
    trees: Mapping[str, Tree]
    derivations: Mapping[str, Derivation]
    patterns: Patterns
    digest: str   # of every declaration: what was cached under it is redone when one changes

    def select(self, files: list[str], only: list[str] | None = None, kind: str | None = None,
               present: Callable[[Tree, list[str]], set[str]] = lambda tree, files: set()) -> Selection:
        """The tree a change belongs to, and the entries it can break (or those named in `only`,
        touched or not): the one place that decides whether a change touches a boot path. The tree is
        the kind whose paths hold every file touched (only `kind`, when the tree is known);
        when several do, the one whose tree has the most of those files (`present` says which
        it has)."""
        owners = [t for t in self.trees.values() if all(t.owns(f) for f in files) and kind in (None, t.name)]
        if len(owners) > 1:
            counts = {t.name: len(present(t, files)) for t in owners}
            most = max(counts.values())
            owners = [t for t in owners if most and counts[t.name] == most] or owners
        if len(owners) != 1:
            if kind:
                outside = next(f for f in files if not self.trees[kind].owns(f))
                return Selection(None, reason=f"the series does not fit the {kind} tree (it touches {outside})")
            fits = " and ".join(t.name for t in owners)
            return Selection(None, reason=f"the series fits both the {fits} trees: give the tree with --tree"
                             if owners else "the series fits no tree bootbot knows")
        tree = owners[0]
        if only:   # a maintainer's retest: the entries named, touched or not
            unknown = [name for name in only if name not in tree.entries]
            if unknown:
                return Selection(tree, reason=f"no entry named {', '.join(unknown)}: the {tree.name} tree's entries "
                                              f"are {', '.join(tree.entries)}")
            return Selection(tree, [tree.entries[name] for name in only])
        entries = tree.affected(files)
        if entries:
            return Selection(tree, entries)
        if all(tree.unbuilt(f) for f in files):
            return Selection(tree, reason=f"the series touches only code a {tree.description} build does not compile "
                                          f"({files[0]})")
        return Selection(tree, reason="the series touches no boot path")

    def kind_of(self, tree: Path) -> str | None:
        """The kind of the git tree at `tree`, known by its marks; None when no kind's are there."""
        kinds = [t.name for t in self.trees.values() if t.is_kind_of(tree)]
        return kinds[0] if len(kinds) == 1 else None

    def all_entries(self) -> list[Entry]:
        """Every tree's entries (a name is a tree's own: Linux's xen-pvh is not Xen's)."""
        return [e for tree in self.trees.values() for e in tree.entries.values()]

    def file_names(self) -> list[str]:
        """Every file an entry boots, directly or through derivations, by name."""
        values = {value for e in self.all_entries() for value in e.values}
        names = [n for e in self.all_entries() for n in e.files]
        for name in names:   # grows as it goes: a derivation's inputs are files too
            inputs = self.derivations[name].inputs if name in self.derivations else ()
            names += [i for i in inputs if i not in values and i not in names]
        return list(dict.fromkeys(names))

    def missing_files(self, entries: list[Entry], given: Mapping, host: Mapping) -> dict[str, list[str]]:
        """The files `entries` boot that can be had neither as given, nor derived, nor from the
        host: by name, with the entries that boot each."""
        def available(name: str, values) -> bool:
            if name in given or name in host or name in values:
                return True
            derivation = self.derivations.get(name)
            return derivation is not None and all(available(i, values) for i in derivation.inputs)
        missing: dict[str, list[str]] = {}
        for e in entries:
            for name in e.files:
                if not available(name, e.values):
                    missing.setdefault(name, []).append(e.name)
        return missing

    def host_files(self, tree: Tree) -> list[str]:
        """The files `tree`'s entries boot, directly or through derivations, that its build does
        not yield nor a derivation make: the host's."""
        values = {value for e in tree.entries.values() for value in e.values}
        pending, seen, host = [n for e in tree.entries.values() for n in e.files], set(), set()
        while pending:
            name = pending.pop()
            if name in seen or name in tree.artifacts or name in values:
                continue
            seen.add(name)
            if name in self.derivations:
                pending += self.derivations[name].inputs
            else:
                host.add(name)
        return sorted(host)


def load(folder: Path = CHECKS) -> Declarations:
    """The declarations in `folder`; LabError, naming the file, when one does not hold."""
    current = folder
    try:
        trees = {}
        for current in sorted((folder / "trees").glob("*.toml")):
            trees[current.stem] = tree_module.load(current, folder / "entries" / current.name)
        current = folder / "files.toml"
        derivations = files_module.load(current)
        current = folder / "console.toml"
        patterns = Patterns.load(current)
    except (OSError, KeyError, TypeError, ValueError, re.error) as e:   # TOMLDecodeError is a ValueError
        raise LabError(f"declarations {current}: {type(e).__name__}: {e}") from None
    if not trees:
        raise LabError(f"declarations {folder}: no tree in {folder / 'trees'}")
    return Declarations(folder, trees, derivations, patterns, _digest(folder))


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
