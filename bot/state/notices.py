"""Table notice: what the operator was told once (a day's reply limit reached, an alarm raised),
so that it is not told again until it is forgotten (an alarm that cleared)."""
from __future__ import annotations

from bot.state.database import Database, now


class NoticeTable:
    def __init__(self, database: Database):
        self.database = database

    def first(self, key: str) -> bool:
        """Records `key`; whether it is new (to be told now)."""
        with self.database.transaction():
            return bool(self.database.execute("INSERT OR IGNORE INTO notice (key, at) VALUES (?, ?)", key,
                                              now()).rowcount)

    def keys(self, prefix: str) -> set[str]:
        return {r["key"] for r in self.database.rows("SELECT key FROM notice WHERE key LIKE ? || '%'", prefix)}

    def forget(self, key: str) -> None:
        with self.database.transaction():
            self.database.execute("DELETE FROM notice WHERE key = ?", key)
