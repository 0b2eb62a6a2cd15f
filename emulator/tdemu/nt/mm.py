"""mm: memory freed under the driver (a pool block, a deleted device and its extension) stays watched,
as Driver Verifier's special pool keeps freed pages inaccessible: a later guest read or write of it,
or a routine given a pointer into it, is a use-after-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..machine import phys


@dataclass
class MmState:
    """The freed ranges, the uses of them found, and which (site, range) were already reported."""
    freed: list[tuple[int, int, str]] = field(default_factory=list)  # start, end, what
    uaf: list[dict] = field(default_factory=list)
    seen: set = field(default_factory=set)


def free_memory(k, start: int, end: int, what: str) -> None:
    k.mm.freed.append((start, end, what))
    k.cpu.watch(start, end)


def _use(k, key: tuple, start: int, what: str, access: str, address: int, pc: int, text: str) -> None:
    if key in k.mm.seen:
        return
    k.mm.seen.add(key)
    t = k.current
    k.mm.uaf.append({"what": what, "access": access, "address": address, "offset": address - start, "pc": pc,
                     "where": k.sym.fmt(pc), "thread": t.name if t else None, "call": k.total_calls})
    k.violation("use_after_free", text, pc, t)


def freed_access(k, write: bool, address: int, pc: int) -> None:
    """A watched guest access (the CPU reports the masked alias of the address)."""
    for start, end, what in k.mm.freed:
        if phys(start) <= address < phys(end):
            rw = "write" if write else "read"
            address = start + (address - phys(start))
            _use(k, (pc, start), start, what, rw, address, pc,
                 f"{rw} of freed {what} at {address:#x} (+{address - start:#x})")
            return


def check_freed(k, addr: int, size: int, api: str) -> None:
    """A routine given a pointer into freed memory uses it on the driver's behalf: a use-after-free too."""
    for start, end, what in k.mm.freed:
        if start < addr + size and addr < end:
            site = k.ret_site()
            _use(k, (site, start, api), start, what, f"{api} on it", addr, site,
                 f"{api}({addr:#x}): the object lies in freed {what} (+{addr - start:#x})")
            return
