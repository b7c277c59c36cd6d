"""Looking an instruction pointer up in a build's files: to function+offset (the ELF symbol table,
read with pyelftools) and to source file:line (addr2line from binutils, which reads DWARF's line
tables far faster than Python could)."""
from __future__ import annotations

import bisect
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

ADDR2LINE_SECONDS = 20   # a vmlinux with line tables takes well under one


@dataclass(frozen=True)
class Place:
    symbol: str   # function+0xoffset
    file: str     # the source, relative to the tree when it is in it; "" without line tables
    line: int
    binary: str   # the build's file, by the name the tree gives it


@dataclass(frozen=True)
class Symbols:
    """A build's files with symbols, by the CPU mode whose code they hold (checks/trees/*.toml
    [symbols]): "real" for 16-bit code, "protected" and "long" for 32- and 64-bit code."""
    by_mode: Mapping[str, tuple[tuple[str, Path], ...]]
    source: Path | None = None   # the tree the build came from: source paths are made relative to it

    def lookup(self, mode: str, ip: int, pc: int) -> Place | None:
        """Where `pc` (a linear address; `ip`, its offset in the code segment) is. 16-bit code is
        looked up by `ip`, since the setup code runs with CS at its own base; other code by `pc` as
        linked, else as a physical address (code that runs before paging: pvh_start_xen)."""
        for name, path in self.by_mode.get(mode, ()):
            table = _table(path)
            if table is None:
                continue
            for address in [ip] if mode == "real" else [pc, *table.virtual(pc)]:
                symbol = table.symbol(address)
                if symbol:
                    file, line = _source_line(path, address, self.source)
                    return Place(symbol, file, line, name)
        return None


class _Table:
    def __init__(self, elf: ELFFile):
        code = [s for s in elf.iter_sections() if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR]
        starts: dict[int, tuple[tuple[bool, bool, bool], str]] = {}   # by preference: a sized global function
        symtab = elf.get_section_by_name(".symtab")
        for s in symtab.iter_symbols() if isinstance(symtab, SymbolTableSection) else ():
            if not s.name or s.name.startswith((".", "$")) or s["st_info"]["type"] not in ("STT_FUNC", "STT_NOTYPE"):
                continue
            address = s["st_value"]
            if not any(c["sh_addr"] <= address < c["sh_addr"] + c["sh_size"] for c in code):
                continue
            rank = (s["st_info"]["type"] == "STT_FUNC", s["st_size"] > 0, s["st_info"]["bind"] == "STB_GLOBAL")
            if address not in starts or rank > starts[address][0]:
                starts[address] = (rank, s.name)
        self.addresses = sorted(starts)
        self.names = [starts[a][1] for a in self.addresses]
        self.code = [(c["sh_addr"], c["sh_addr"] + c["sh_size"]) for c in code]
        self.loads = [(p["p_paddr"], p["p_vaddr"], p["p_memsz"]) for p in elf.iter_segments()
                      if p["p_type"] == "PT_LOAD"]

    def symbol(self, address: int) -> str | None:
        """The nearest symbol at or below `address`, with the offset, when `address` is code."""
        n = bisect.bisect_right(self.addresses, address) - 1
        if n < 0 or not any(low <= address < high for low, high in self.code):
            return None
        return f"{self.names[n]}+{address - self.addresses[n]:#x}"

    def virtual(self, physical: int) -> Iterator[int]:
        for paddr, vaddr, size in self.loads:
            if paddr != vaddr and paddr <= physical < paddr + size:
                yield physical - paddr + vaddr


@lru_cache(maxsize=8)
def _table_cached(path: Path, stamp: tuple[int, int]) -> _Table | None:
    try:
        with path.open("rb") as f:
            return _Table(ELFFile(f))
    except (OSError, ELFError):
        return None


def _table(path: Path) -> _Table | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return _table_cached(path, (stat.st_size, stat.st_mtime_ns))


def _source_line(path: Path, address: int, source: Path | None) -> tuple[str, int]:
    addr2line = shutil.which("addr2line")
    if addr2line is None:
        return "", 0
    try:
        out = subprocess.run([addr2line, "-e", str(path), f"{address:#x}"], capture_output=True, text=True,
                             timeout=ADDR2LINE_SECONDS).stdout.strip()
    except subprocess.TimeoutExpired:
        return "", 0
    file, _, line = out.split(" (discriminator")[0].rpartition(":")
    if not file or file.startswith("??") or not line.isdigit():
        return "", 0
    file = os.path.normpath(file)
    if source and file.startswith(f"{source}/"):
        file = file[len(str(source)) + 1:]
    return file, int(line)
