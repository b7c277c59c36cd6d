"""bootbot's parts in layers: each imports only from its own layer and the ones below it, so no
two packages import each other. Read from the code (every import, at any depth of a module)."""
from __future__ import annotations

import ast

from harness import ROOT

BOT = ROOT / "bot"

# Bottom first. A part is a package of bot/ or a module at its top.
LAYERS = [
    {"words"},                                 # statuses, verdicts, the lab's error: imports nothing of bootbot
    {"config", "folders", "timebox"},          # the configuration, where things are kept, reading with a deadline
    {"sandbox", "state"},                      # confinement; the list bot's database
    {"mail"},                                  # mail commands and replies
    {"boots"},                                 # booting and judging consoles
    {"changes"},                               # a change, a mailed series, the guard
    {"trees"},                                 # tree kinds, where a tree is and what it follows, builds
    {"declarations", "settings"},              # checks/ loaded; the configuration made into settings
    {"verdicts"},                              # the rules of a check
    {"sources"},                               # where changes come from
    {"reports"},                               # what is read from results and state: text, pages, health
    {"queue"},                                 # checks on other machines
    {"daemon", "cli"},                         # the list bot, the command line
]
LAYER = {part: n for n, parts in enumerate(LAYERS) for part in parts}


def part(module: str) -> str:
    return module.split(".")[1]


def imports() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part): the files where it happens, for every bot import."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(BOT.rglob("*.py")):
        module = ".".join(path.relative_to(BOT.parent).with_suffix("").parts).removesuffix(".__init__")
        if module == "bot":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            if isinstance(node, ast.ImportFrom) and node.module == "bot":   # from bot import x
                names = [f"bot.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("bot.") and part(name) != part(module):
                    found.setdefault((part(module), part(name)), []).append(str(path.relative_to(BOT.parent)))
    return found


def test_every_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in BOT.iterdir() if p.suffix == ".py" or p.is_dir()}
    parts -= {"__init__", "__pycache__"}
    assert parts == set(LAYER), f"give these a layer: {sorted(parts - set(LAYER))}; gone: {sorted(set(LAYER) - parts)}"


def test_no_part_imports_one_above_it():
    upward = {f"{a} -> {b}": where for (a, b), where in imports().items() if LAYER[b] > LAYER[a]}
    assert upward == {}


def test_no_two_parts_import_each_other():
    found = imports()
    assert sorted(f"{a} <-> {b}" for (a, b) in found if (b, a) in found and a < b) == []
