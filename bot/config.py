"""Configuration: config/bootbot.toml, overridden key by key by a file the operator gives."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / "config" / "bootbot.toml"


class ConfigError(Exception):
    pass


class Config:
    def __init__(self, tables: dict, sources: dict[tuple[str, str], Path]):
        self.tables = tables
        self.sources = sources   # which file set each key, so relative paths resolve against it

    def get(self, table: str, key: str):
        try:
            return self.tables[table][key]
        except KeyError:
            raise ConfigError(f"configuration has no {table}.{key}") from None

    def path(self, table: str, key: str) -> Path:
        value = Path(os.path.expanduser(self.get(table, key)))
        return value if value.is_absolute() else (self.sources[table, key].parent / value).resolve()


def load(override: Path | None = None) -> Config:
    tables: dict = {}
    sources: dict = {}
    for path in [DEFAULT, override] if override else [DEFAULT]:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as e:
            raise ConfigError(f"cannot read configuration {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"configuration {path} is not valid TOML: {e}") from None
        for table, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(f"configuration {path}: {table} must be a table")
            tables.setdefault(table, {}).update(values)
            sources.update({(table, key): path for key in values})
    return Config(tables, sources)
