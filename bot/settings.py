"""What the configuration says a check works with, made once from it: the declarations, where
each tree is, the boot lab, the limits."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from bot import declarations
from bot.boots.files import Files
from bot.boots.runner import Lab
from bot.changes.guard import SeriesLimits
from bot.config import Config, ConfigError
from bot.declarations import Declarations, Selection
from bot.sandbox import Sandbox, SandboxLimits
from bot.trees.tree import Tree


@dataclass(frozen=True)
class Site:
    """Where a tree kind's git tree is, and the branch series without a known base apply to."""
    path: Path
    branch: str


@dataclass(frozen=True)
class Rules:
    """How hard a check tries before it blames ([boot] in the configuration)."""
    strict: bool = False          # experimental entries decide the verdict too
    confirm: int = 3              # boots in all of an entry that fails, before it counts; a pass ends them
    timeout_factor: float = 10    # an entry's limits follow this machine: at least these times the
    silence_factor: float = 3     # base's latest boot here, never less than the entry's own


@dataclass(frozen=True)
class Settings:
    declarations: Declarations
    sites: Mapping[str, Site | None]   # by tree kind; None: not configured
    state: Path
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
        return bool(selection.entries) and self.sites.get(selection.tree.name) is not None

    def _present(self, tree: Tree, files: list[str]) -> set[str]:
        site = self.sites.get(tree.name)
        if site is None:
            return set()
        listed = subprocess.run(["git", "-C", str(site.path), "ls-tree", "-r", "--name-only", site.branch, "--",
                                 *files], capture_output=True, text=True)
        return set(listed.stdout.splitlines())

    def site(self, tree: str, path: Path | None = None) -> Site:
        """Where the `tree` kind is: `path` when given (`check --tree`), else as configured."""
        configured = self.sites.get(tree)
        if path is not None:
            return Site(path.resolve(), configured.branch if configured else "master")
        if configured is None:
            raise ConfigError(f"no {tree} tree: give --tree, or set [trees.{tree}] path")
        return configured


def lab(config: Config, accel: str | None = None) -> Lab:
    host = {name: config.path("lab", name) for name in config.table("lab") if name != "qemu"}
    return Lab(qemu=config.get("lab", "qemu"), host=host, accel=accel or config.get("boot", "accel"),
               probe_seconds=config.get("boot", "kvm_probe_seconds"),
               jobs=config.get("boot", "jobs") or os.cpu_count() or 1,
               cache=config.path("state", "dir") / "cache", sandbox=Sandbox(config.get("sandbox", "uid")))


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
        sites[name] = Site(config.path(f"trees.{name}", "path"), config.get(f"trees.{name}", "branch")) \
            if path else None
    return Settings(
        declarations=declared, sites=sites, state=config.path("state", "dir"),
        workspaces=config.path("build", "dir"), guess_days=config.get("build", "guess_base_days"),
        slots=config.get("build", "workspaces"),
        make_jobs=config.get("build", "jobs") or os.cpu_count() or 1, lab=lab(config, accel),
        series_limits=SeriesLimits(**{key: config.get("limits", key) for key in SeriesLimits.__dataclass_fields__}),
        sandbox_limits=sandbox_limits(config),
        rules=Rules(strict=config.get("boot", "strict_experimental"), confirm=config.get("boot", "confirm"),
                    timeout_factor=config.get("boot", "timeout_factor"),
                    silence_factor=config.get("boot", "silence_factor")))
