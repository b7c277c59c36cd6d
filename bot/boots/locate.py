"""Where a boot died when its console does not say: the instruction pointer of the vCPU when the
machine stopped (a reset, a triple fault: which exception began it, from QEMU's exception log
when a retry kept one) or when its console fell silent, or of a crashed guest as Xen reports it
(checks/console.toml [[address]]); looked up in the build's files with symbols:
"triple fault: #UD at pvh_start_xen+0x0 (arch/x86/platform/pvh/head.S:54)"."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.boots.console import Address
from bot.boots.diagnostics import INTERRUPTS, REGISTERS
from bot.boots.symbols import Symbols

# The architecture's names of exception vectors, as the SDM and Linux's traps say them.
_VECTORS = {0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM", 8: "#DF",
            10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF", 17: "#AC", 18: "#MC",
            19: "#XM", 20: "#VE", 21: "#CP"}
# QEMU's line for each interrupt it delivers, in protected and long mode only
# (target/i386/tcg/seg_helper.c do_interrupt_all): where the CPU was.
_INTERRUPT = re.compile(r"^\s*\d+: v=[0-9a-f]{2} e=[0-9a-f]{4} i=\d cpl=\d+ IP=[0-9a-f]{4}:[0-9a-f]+ "
                        r"pc=(?P<pc>[0-9a-f]+)")
# QEMU's line for each exception raised (target/i386/tcg/excp_helper.c check_exception), in
# every mode: real mode has no line of the kind above.
_RAISED = re.compile(r"^check_exception old: 0x[0-9a-f]+ new 0x(?P<vector>[0-9a-f]+)")
_STOPPED = {"guest-reset": "reset", "guest-shutdown": "powered off"}   # QMP's reasons, in words
_DUMP_IP = re.compile(r"^(?:RIP|EIP)=(?P<ip>[0-9a-f]+)", re.M)
_DUMP_CS = re.compile(r"^CS =[0-9a-f]{4} (?P<base>[0-9a-f]+) (?P<rest>.*)$", re.M)
_DUMP_CR0 = re.compile(r"^CR0=(?P<cr0>[0-9a-f]+)", re.M)


@dataclass(frozen=True)
class Location:
    what: str          # triple fault: #UD; reset; powered off; hung; dom0 crashed: #UD
    mode: str          # real, protected or long: the CPU's when it happened
    pc: str            # the linear address, in hex
    symbol: str = ""   # function+0xoffset, when a file of the build has it
    file: str = ""     # its source, relative to the tree
    line: int = 0
    binary: str = ""   # the build's file it was found in

    def __str__(self) -> str:
        if not self.symbol:
            return f"{self.what} at {self.pc} ({self.mode} mode; no file of the build has it)"
        return f"{self.what} at {self.symbol}" + (f" ({self.file}:{self.line})" if self.file else f" ({self.binary})")


@dataclass(frozen=True)
class _Point:
    what: str
    mode: str
    ip: int
    pc: int


def locate(folder: Path, console: str, addresses: tuple[Address, ...], symbols: Symbols,
           registers: bool = True) -> Location | None:
    """Where the boot in `folder` (its console text `console`) died, from what it left there;
    `registers`: whether QEMU's registers may say it (not after a report of the kernel's own)."""
    point = _from_console(console, addresses) or (registers and _from_registers(folder / REGISTERS,
                                                                                folder / INTERRUPTS)) or None
    if point is None:
        return None
    place = symbols.lookup(point.mode, point.ip, point.pc)
    where = (place.symbol, place.file, place.line, place.binary) if place else ()
    return Location(point.what, point.mode, f"{point.pc:#x}", *where)


def _from_console(console: str, addresses: tuple[Address, ...]) -> _Point | None:
    for address in addresses:
        match = address.pattern.search(console)
        if match:
            fault = address.exception and address.exception.search(console[:match.start()])
            what = f"{address.what}: {fault['exception']}" if fault else address.what
            pc = int(match["pc"], 16)
            return _Point(what, address.mode, pc, pc)
    return None


def _from_registers(dump_file: Path, interrupts: Path) -> _Point | None:
    """Where the vCPU was when the machine stopped or fell silent (diagnostics.REGISTERS)."""
    try:
        when, _, dump = dump_file.read_text(errors="replace").partition("\n")
    except OSError:
        return None
    ip, cs = _DUMP_IP.search(dump), _DUMP_CS.search(dump)
    if not (ip and cs):
        return None
    when = when.removeprefix("when: ")
    fault = _first_fault(interrupts) if when == "guest-reset" else None
    what = f"triple fault: {fault}" if fault else _STOPPED.get(when, when)
    return _Point(what, _mode(dump), int(ip["ip"], 16), int(cs["base"], 16) + int(ip["ip"], 16))


def _first_fault(log: Path) -> str | None:
    """The exception that began the chain ending in a triple fault, from QEMU's log of them:
    going back from the end, over the exceptions raised at the same address (failing to deliver
    one raises the next there: #UD, then #GP, then #DF). None when the log shows no triple fault."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    end = text.rfind("\nTriple fault")
    if end < 0:
        return None
    vector, pc = None, None
    for line in reversed(text[:end].splitlines()):
        raised = _RAISED.match(line)
        delivered = _INTERRUPT.match(line)
        if raised:
            vector = int(raised["vector"], 16)
        elif delivered and pc is None:
            pc = delivered["pc"]
        elif (delivered and delivered["pc"] != pc) or line.startswith("CPU Reset"):
            break
    return None if vector is None else _VECTORS.get(vector, f"vector {vector:#x}")


def _mode(dump: str) -> str:
    cs, cr0 = _DUMP_CS.search(dump), _DUMP_CR0.search(dump)
    if cs and "CS64" in cs["rest"]:
        return "long"
    return "protected" if cr0 and int(cr0["cr0"], 16) & 1 else "real"
