"""Configuration: config/bootbot.toml, overridden key by key by a file the operator gives."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / "config" / "bootbot.toml"
# Keys an older bootbot read, and what to write instead.
MOVED = {("tree", "path"): "[trees.linux] path", ("tree", "branch"): "[trees.linux] branch",
         ("build", "fragment"): "the tree's declaration (checks/trees/linux.toml: fragment)",
         ("archive", "list"): "[[sources]] list (each source has its own)"}
LISTS = "sources"   # the one array of tables


class ConfigError(Exception):
    pass


class Config:
    def __init__(self, tables: dict, setters: dict[tuple[str, str], Path]):
        self.tables = tables
        self.setters = setters   # which file set each key, so relative paths resolve against it

    def get(self, table: str, key: str):
        """`table` may name a sub-table: "trees.linux"."""
        try:
            values = self.tables
            for part in table.split("."):
                values = values[part]
            return values[key]
        except (KeyError, TypeError):
            raise ConfigError(f"configuration has no {table}.{key}") from None

    def table(self, table: str) -> dict:
        return dict(self.tables.get(table, {}))

    def list(self, name: str) -> list[dict]:
        """The [[name]] tables."""
        return [dict(v) for v in self.tables.get(name, [])]

    def path(self, table: str, key: str) -> Path:
        value = Path(os.path.expanduser(self.get(table, key)))
        return value if value.is_absolute() else (self.setters[table, key].parent / value).resolve()


def load(override: Path | None = None) -> Config:
    tables: dict = {}
    setters: dict = {}
    for path in [DEFAULT, override] if override else [DEFAULT]:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as e:
            raise ConfigError(f"cannot read configuration {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"configuration {path} is not valid TOML: {e}") from None
        for table, values in data.items():
            if table == LISTS:   # [[sources]]: a file that names any names them all
                if not (isinstance(values, list) and all(isinstance(v, dict) for v in values)):
                    raise ConfigError(f"configuration {path}: {LISTS} must be [[{LISTS}]] tables")
                tables[LISTS] = values
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"configuration {path}: {table} must be a table")
            moved = [f"{table}.{key} is now {MOVED[table, key]}" for key in values if (table, key) in MOVED]
            if moved:
                raise ConfigError(f"configuration {path}: {moved[0]}")
            _merge(tables.setdefault(table, {}), values)
            setters.update({(table, key): path for key in values})
            setters.update({(f"{table}.{sub}", key): path for sub, inner in values.items()
                            if isinstance(inner, dict) for key in inner})
    return Config(tables, setters)


def _merge(into: dict, values: dict) -> None:
    """Key by key, into sub-tables too ([trees.linux] overrides only what it names)."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
