"""rtl: the run-time library ntoskrnl exports (ReactOS sdk/lib/rtl and sdk/lib/crt, linked into
ntoskrnl): counted strings, DbgPrint, and the C run-time routines (memcpy, _vsnwprintf, ...)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..printf import format_printf
from .api import Component
from .defs import DISPATCH_LEVEL

rtl = Component("rtl")


@dataclass
class RtlState:
    """What the driver printed (DbgPrint and friends)."""
    dbgprint: list[dict] = field(default_factory=list)


def init(_k) -> RtlState:
    return RtlState()


# ---------------------------------------------------------------- counted strings (rtl/unicode.c)

@rtl.export(max_irql=DISPATCH_LEVEL)
def RtlInitUnicodeString(k):
    dst, src = k.cpu.args(2)
    if src:
        n = len(k.cpu.cwstr(src)) * 2
        k.cpu.mem_write(dst, struct.pack("<HHIQ", min(n, 0xFFFC), min(n + 2, 0xFFFE), 0, src))
    else:
        k.cpu.mem_write(dst, struct.pack("<HHIQ", 0, 0, 0, 0))


@rtl.export()
def RtlInitAnsiString(k):
    dst, src = k.cpu.args(2)
    n = len(k.cpu.cstr(src)) if src else 0
    k.cpu.mem_write(dst, struct.pack("<HHIQ", n, n + 1 if src else 0, 0, src))


def _ansi_string(k, addr: int) -> str:
    length, _mx, _p, buf = struct.unpack("<HHIQ", k.cpu.mem(addr, 16))
    return k.cpu.mem(buf, length).decode("latin-1") if buf else ""


# ---------------------------------------------------------------- printf family (rtl/debug.c, crt)

def _fmt(k, fmt: str, next_arg, wide: bool) -> str:
    return format_printf(fmt, next_arg, k.cpu.cstr, k.cpu.cwstr, k.cpu.unicode_string, lambda a: _ansi_string(k, a), wide)


def _varargs(k, first_index: int):
    """Iterator over the variadic arguments from position first_index (0-based)."""
    rsp = k.cpu.rsp()
    regs = k.cpu.args(4)
    idx = [first_index]

    def nxt():
        i = idx[0]
        idx[0] += 1
        if i < 4:
            return regs[i]
        return k.cpu.u64(rsp + 0x28 + 8 * (i - 4))
    return nxt


def _valist(k, ptr: int):
    idx = [0]

    def nxt():
        v = k.cpu.u64(ptr + 8 * idx[0])
        idx[0] += 1
        return v
    return nxt


@rtl.export()
def DbgPrint(k):
    text = _fmt(k, k.cpu.cstr(k.cpu.arg0()), _varargs(k, 1), False)
    k.rtl.dbgprint.append({"thread": k.sched.current.name, "text": text, "call_site": k.sym.fmt(k.ret_site())})
    return 0


@rtl.export()
def DbgPrintEx(k):
    _comp, _level, fmtp = k.cpu.args(3)
    text = _fmt(k, k.cpu.cstr(fmtp), _varargs(k, 3), False)
    k.rtl.dbgprint.append({"thread": k.sched.current.name, "text": text, "call_site": k.sym.fmt(k.ret_site())})
    return 0


def _store_w(k, buf: int, count: int, s: str) -> int:
    enc = s.encode("utf-16le")
    n = len(s)
    if n >= count:
        if count:
            k.cpu.mem_write(buf, enc[: count * 2])
        return -1 & 0xFFFFFFFF
    k.cpu.mem_write(buf, enc + b"\0\0")
    return n


def _store_a(k, buf: int, count: int, s: str) -> int:
    enc = s.encode("latin-1", "replace")
    if len(enc) >= count:
        if count:
            k.cpu.mem_write(buf, enc[:count])
        return -1 & 0xFFFFFFFF
    k.cpu.mem_write(buf, enc + b"\0")
    return len(enc)


@rtl.export()
def _vsnwprintf(k):
    buf, count, fmtp, va = k.cpu.args(4)
    return _store_w(k, buf, count, _fmt(k, k.cpu.cwstr(fmtp), _valist(k, va), True))


@rtl.export()
def _vsnprintf(k):
    buf, count, fmtp, va = k.cpu.args(4)
    return _store_a(k, buf, count, _fmt(k, k.cpu.cstr(fmtp), _valist(k, va), False))


@rtl.export()
def _snwprintf(k):
    buf, count, fmtp = k.cpu.args(3)
    return _store_w(k, buf, count, _fmt(k, k.cpu.cwstr(fmtp), _varargs(k, 3), True))


@rtl.export()
def _snprintf(k):
    buf, count, fmtp = k.cpu.args(3)
    return _store_a(k, buf, count, _fmt(k, k.cpu.cstr(fmtp), _varargs(k, 3), False))


# ---------------------------------------------------------------- memory and strings (crt)

@rtl.export()
def memset(k):
    d, c, n = k.cpu.args(3)
    if n:
        k.cpu.mem_write(d, bytes([c & 0xFF]) * n)
    return d


@rtl.export(aliases={"memmove": None})
def memcpy(k):
    d, s, n = k.cpu.args(3)
    if n:
        k.cpu.mem_write(d, k.cpu.mem(s, n))
    return d


@rtl.export()
def wcslen(k):
    return len(k.cpu.cwstr(k.cpu.arg0()))


@rtl.export()
def strlen(k):
    return len(k.cpu.cstr(k.cpu.arg0()))
