"""printf-family formatting as the Windows kernel's CRT does it (LLP64: %d/%x/%l are 32-bit)."""

from __future__ import annotations

import re

_SPEC = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d+))?(hh|h|ll|l|I64|I32|I|z|w|L)?([diuxXocCsSZpn%])")


def format_printf(fmt: str, next_arg, read_cstr, read_wstr, read_ustr, read_astr, wide: bool) -> str:
    out = []
    pos = 0
    for m in _SPEC.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, length, conv = m.groups()
        if conv == "%":
            out.append("%")
            continue
        if width == "*":
            width = str(_s32(next_arg()))
        if prec == "*":
            prec = str(_s32(next_arg()))
        w = int(width) if width else 0
        p = int(prec) if prec is not None and prec != "" else None
        if conv in "diuxXo":
            v = next_arg()
            bits = 64 if length in ("ll", "I64", "I", "z") else (16 if length == "h" else (8 if length == "hh" else 32))
            v &= (1 << bits) - 1
            if conv in "di" and v >> (bits - 1):
                v -= 1 << bits
            s = str(abs(v)) if conv in "di" else str(v) if conv == "u" else format(v, conv)  # o, x, X
            if p is not None:
                s = s.rjust(p, "0")
            sign = "-" if conv in "di" and v < 0 else ("+" if "+" in flags and conv in "di" else "")
            if "#" in flags and conv in "xX" and v:
                sign += "0x" if conv == "x" else "0X"
            body = sign + s
            if len(body) < w:
                if "-" in flags:
                    body = body.ljust(w)
                elif "0" in flags and p is None:
                    body = sign + s.rjust(w - len(sign), "0")
                else:
                    body = body.rjust(w)
            out.append(body)
        elif conv == "p":
            out.append(format(next_arg() & 0xFFFFFFFFFFFFFFFF, "016X"))
        elif conv in "cC":
            v = next_arg()
            out.append(chr(v & (0xFFFF if (conv == "C") != wide or length in ("l", "w") else 0xFF)))
        elif conv in "sS":
            a = next_arg()
            # %s is the format's own width (%S the other), unless l or w (wide) or h (narrow) says
            is_wide = length in ("l", "w") or (length != "h" and (conv == "s") == wide)
            s = "(null)" if not a else (read_wstr(a) if is_wide else read_cstr(a))
            if p is not None:
                s = s[:p]
            out.append(s.ljust(w) if "-" in flags else s.rjust(w))
        elif conv == "Z":
            a = next_arg()
            s = "(null)" if not a else (read_ustr(a) if length == "w" else read_astr(a))
            out.append(s)
        elif conv == "n":
            next_arg()
    out.append(fmt[pos:])
    return "".join(out)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v
