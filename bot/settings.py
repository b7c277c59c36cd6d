"""What the configuration says a check works with, made once from it: the declarations, where
each tree is, the boot lab, the limits."""
from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot import declarations
from bot.boots.files import Files
from bot.boots.lab import Lab
from bot.changes.guard import SeriesLimits
from bot.config import Config, ConfigError
from bot.declarations import Declarations, Selection
from bot.folders import StateFolder
from bot.sandbox import Sandbox, SandboxLimits
from bot.trees.site import Site
from bot.trees.tree import Tree
from bot.trees.upstream import Following, Upstream
from bot.words import LabError


@dataclass(frozen=True)
class Rules:
    """How hard a check tries before it blames ([boot] in the configuration)."""
    strict_experimental: bool = False   # experimental entries decide the verdict too
    confirm: int = 3              # boots in all of an entry that fails, before it counts; a pass ends them
    timeout_factor: float = 10    # an entry's limits follow this machine: at least these times the
    silence_factor: float = 3     # base's latest boot here, never less than the entry's own


@dataclass(frozen=True)
class Settings:
    declarations: Declarations
    sites: Mapping[str, Site | None]   # by tree kind; None: not configured
    state: StateFolder
    workspaces: Path
    guess_days: int   # how far back a series without a known base-commit is looked for
    slots: int
    make_jobs: int
    lab: Lab
    series_limits: SeriesLimits
    sandbox_limits: SandboxLimits
    rules: Rules

    def select(self, files: list[str], only: list[str] | None = None, tree_path: Path | None = None) -> Selection:
        """Declarations.select, knowing the kind of `tree_path` and which files each configured
        tree has."""
        kind = self.declarations.kind_of(tree_path) if tree_path else None
        return self.declarations.select(files, only, kind, self._present)

    def checkable(self, files: list[str], tree_path: Path | None = None) -> bool:
        """Whether the list bot can check a change to `files` (of the tree at `tree_path`, when
        known): it touches a boot path of a tree the configuration has."""
        selection = self.select(files, tree_path=tree_path)
        tree = selection.tree
        return tree is not None and bool(selection.entries) and self.sites.get(tree.name) is not None

    def _present(self, tree: Tree, files: list[str]) -> set[str]:
        site = self.sites.get(tree.name)
        if site is None:
            return set()
        try:
            head = site.default()[1]
        except LabError:   # not fetched yet: it has none of them as far as anyone can tell
            return set()
        listed = subprocess.run(["git", "-C", str(site.path), "ls-tree", "-r", "--name-only", head, "--", *files],
                                capture_output=True, text=True)
        return set(listed.stdout.splitlines())

    def site(self, tree: str, path: Path | None = None) -> Site:
        """Where the `tree` kind is: as configured, unless `path` names another (`check --tree`):
        that one is the user's own, checked from its HEAD, and nothing is fetched into it."""
        configured = self.sites.get(tree)
        if path is not None and not (configured and configured.path == path.resolve()):
            return Site(tree, path.resolve(), None)
        if configured is None:
            raise ConfigError(f"no {tree} tree: give --tree, or set [trees.{tree}] path")
        return configured


def state_folder(config: Config) -> StateFolder:
    return StateFolder(config.path("state", "dir"))


def lab(config: Config, accel: str | None = None) -> Lab:
    host = {name: config.path("lab", name) for name in config.table("lab") if name != "qemu"}
    return Lab(qemu=config.get("lab", "qemu"), host=host, accel=accel or config.get("boot", "accel"),
               probe_seconds=config.get("boot", "kvm_probe_seconds"),
               jobs=config.get("boot", "jobs") or os.cpu_count() or 1,
               cache=state_folder(config).cache, sandbox=Sandbox(config.get("sandbox", "uid")))


def files(given: Mapping[str, Path], declared: Declarations, lab: Lab, limits: SandboxLimits,
          given_by: str = "given", cache: Path | None = None) -> Files:
    """The files entries boot: `given`, else derived (each step confined, within `limits`),
    else the lab's host files."""
    return Files(given, declared.derivations, lab.host, cache or lab.cache, Sandbox(lab.sandbox.uid, limits), given_by)


def sandbox_limits(config: Config) -> SandboxLimits:
    return SandboxLimits(**{key: config.get("sandbox", key) for key in SandboxLimits.__dataclass_fields__})


def load(config: Config, accel: str | None = None, declared: Declarations | None = None) -> Settings:
    declared = declared or declarations.load(config.path("checks", "dir"))
    sites = {}
    for name in declared.trees:
        path = config.get(f"trees.{name}", "path") if name in config.table("trees") else ""
        sites[name] = Site(name, config.path(f"trees.{name}", "path"), config.get(f"trees.{name}", "branch"),
                           following(config, name)) if path else None
    return Settings(
        declarations=declared, sites=sites, state=state_folder(config),
        workspaces=config.path("build", "dir"), guess_days=config.get("build", "guess_base_days"),
        slots=config.get("build", "workspaces"),
        make_jobs=config.get("build", "jobs") or os.cpu_count() or 1, lab=lab(config, accel),
        series_limits=SeriesLimits(**{key: config.get("limits", key) for key in SeriesLimits.__dataclass_fields__}),
        sandbox_limits=sandbox_limits(config),
        rules=Rules(strict_experimental=config.get("boot", "strict_experimental"),
                    confirm=config.get("boot", "confirm"),
                    timeout_factor=config.get("boot", "timeout_factor"),
                    silence_factor=config.get("boot", "silence_factor")))


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_BRANCH = re.compile(r"[A-Za-z0-9_*][A-Za-z0-9._/*+-]*")


def following(config: Config, kind: str) -> Following | None:
    """What [trees.KIND] follows; None when it names no upstream. ConfigError naming what is wrong."""
    table, where = f"trees.{kind}", f"[[trees.{kind}.upstream]]"
    upstreams = config.get(table, "upstream") if "upstream" in config.table("trees").get(kind, {}) else []
    if not isinstance(upstreams, list) or not all(isinstance(u, dict) for u in upstreams):
        raise ConfigError(f"{where}: must be tables, each a name, a url and branches")
    made: list[Upstream] = []
    for u in upstreams:
        name, url, branches = u.get("name"), u.get("url"), u.get("branches")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or any(m.name == name for m in made):
            raise ConfigError(f"{where}: name {name!r} must be letters, digits, '.', '_' or '-', one per upstream")
        if not isinstance(url, str) or not url.strip() or url.startswith("-"):
            raise ConfigError(f"{where} {name}: url must be a git remote's URL")
        if not (isinstance(branches, list) and branches and all(_refname(b) for b in branches)):
            raise ConfigError(f"{where} {name}: branches must be a list of branch names or globs (stable-*)")
        unknown = sorted(set(u) - {"name", "url", "branches"})
        if unknown:
            raise ConfigError(f"{where} {name}: unknown key {unknown[0]}")
        made.append(Upstream(name, url, tuple(branches)))
    if not made:
        return None
    seconds = {key: config.get(table, key) for key in ("fetch_seconds", "fetch_timeout", "refetch_seconds")}
    if not all(isinstance(v, (int, float)) and v >= 0 for v in seconds.values()):
        raise ConfigError(f"[{table}]: fetch_seconds, fetch_timeout and refetch_seconds must be numbers of seconds")
    return Following(tuple(made), seconds["fetch_seconds"], seconds["fetch_timeout"], seconds["refetch_seconds"])


def _refname(branch) -> bool:
    """Whether `branch` is a branch name or glob (one *) that a refspec takes: git's rules, in short."""
    return (isinstance(branch, str) and _BRANCH.fullmatch(branch) is not None and branch.count("*") <= 1
            and not branch.endswith((".lock", "/", ".")) and ".." not in branch and "//" not in branch)
