"""rtl: the run-time library ntoskrnl exports (ReactOS sdk/lib/rtl and sdk/lib/crt, linked into
ntoskrnl): counted strings, DbgPrint, and the C run-time routines (memcpy, _vsnwprintf, ...)."""

from __future__ import annotations

import itertools
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


# ---------------------------------------------------------------- counted strings (rtl/unicode.c)

@rtl.export(max_irql=DISPATCH_LEVEL)
def RtlInitUnicodeString(k):
    dst, src = k.cpu.args(2)
    n = len(k.cpu.cwstr(src)) * 2 if src else 0
    k.cpu.mem_write(dst, struct.pack("<HHIQ", min(n, 0xFFFC), min(n + 2, 0xFFFE) if src else 0, 0, src))


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
    """The variadic arguments from position first_index (0-based), read as they are asked for."""
    rsp = k.cpu.rsp()
    regs = k.cpu.args(4)
    for i in itertools.count(first_index):
        yield regs[i] if i < 4 else k.cpu.u64(rsp + 0x28 + 8 * (i - 4))


def _dbgprint(k, fmtp: int, first_arg: int) -> int:
    text = _fmt(k, k.cpu.cstr(fmtp), _varargs(k, first_arg).__next__, False)
    k.rtl.dbgprint.append({"thread": k.sched.current.name, "text": text, "call_site": k.sym.fmt(k.ret_site())})
    return 0


@rtl.export()
def DbgPrint(k):
    return _dbgprint(k, k.cpu.arg0(), 1)


@rtl.export()
def DbgPrintEx(k):
    return _dbgprint(k, k.cpu.args(3)[2], 3)


def _sprintf(k, _name: str, wide: bool, va_list: bool) -> int:
    """_snprintf, _vsnprintf and their wide forms: at most `count` characters; -1 when the text (and
    its NUL) does not fit, the text truncated to `count` then, without a NUL."""
    buf, count, fmtp, va = k.cpu.args(4)
    fmt = k.cpu.cwstr(fmtp) if wide else k.cpu.cstr(fmtp)
    s = _fmt(k, fmt, ((k.cpu.u64(va + 8 * i) for i in itertools.count()) if va_list else _varargs(k, 3)).__next__, wide)
    enc, unit = (s.encode("utf-16le"), 2) if wide else (s.encode("latin-1", "replace"), 1)
    n = len(s) if wide else len(enc)
    if n >= count:
        if count:
            k.cpu.mem_write(buf, enc[: count * unit])
        return -1 & 0xFFFFFFFF
    k.cpu.mem_write(buf, enc + b"\0" * unit)
    return n


rtl.export_each(_sprintf, {"_snprintf": (False, False), "_snwprintf": (True, False), "_vsnprintf": (False, True),
                           "_vsnwprintf": (True, True)})


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
