"""Names of driver addresses from the linker's .map (lld-link /MAP), else Module+0xOFFSET as WinDbg
prints them without symbols; x64 stack unwinding with the driver's own .pdata/.xdata."""

from __future__ import annotations

import bisect
import os
import re
import struct

_MAP_LINE = re.compile(
    r"^\s*([0-9a-fA-F]{4}):([0-9a-fA-F]{8})\s+(\S+)\s+([0-9a-fA-F]{8,16})\s+(?:f\s+)?(?:i\s+)?(\S.*)?$"
)


def _demangle_v0(name: str) -> str | None:
    """Rust v0 mangling, the subset for plain paths: _R N<ns> <path> <ident> | C <ident>."""
    s = name[2:]
    pos = [0]

    def ident() -> str:
        if s.startswith("s", pos[0]):  # disambiguator s<base62>_
            end = s.index("_", pos[0])
            pos[0] = end + 1
        if s.startswith("u", pos[0]):
            raise ValueError("punycode")
        m = re.compile(r"\d+").match(s, pos[0])
        if not m:
            raise ValueError("no length")
        n, j = int(m.group()), m.end()
        if j < len(s) and s[j] == "_":
            j += 1
        out = s[j:j + n]
        pos[0] = j + n
        return out

    def path() -> list[str]:
        c = s[pos[0]]
        pos[0] += 1
        if c == "C":
            return [ident()]
        if c == "N":
            pos[0] += 1  # namespace letter (v = value, t = type, C = closure, ...)
            inner = path()
            name_ = ident()
            return inner + ([name_] if name_ else [])
        raise ValueError(c)

    try:
        return "::".join(path())
    except (ValueError, IndexError):
        return None


def demangle(name: str) -> str:
    """Demangle Rust symbols (v0 _R... for plain paths, legacy _ZN...E without the hash); leave others alone."""
    if name.startswith("__imp_"):
        return name
    if name.startswith("_R"):
        return _demangle_v0(name) or name
    if name.startswith("_ZN") and name.endswith("E"):
        s, parts = name[3:-1], []
        while s:  # <length><identifier>...
            m = re.match(r"\d+", s)
            if not m:
                return name
            end = m.end() + int(m.group())
            parts.append(s[m.end():end])
            s = s[end:]
        if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
            parts = parts[:-1]
        out = "::".join(parts)
        for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$RF$", "&"), ("$BP$", "*"), ("$C$", ","), ("$u20$", " "),
                     ("$u7b$", "{"), ("$u7d$", "}"), ("$u27$", "'"), ("$u5b$", "["), ("$u5d$", "]"),
                     ("$u7e$", "~"), ("..", "::"), ("$SP$", "@")):
            out = out.replace(a, b)
        return out
    return name


def find_map_file(sys_path: str) -> str | None:
    stem = os.path.splitext(sys_path)[0]
    for cand in (stem + ".map", stem + ".MAP"):
        if os.path.isfile(cand):
            return cand
    return None


class Symbolizer:
    def __init__(self, module_name: str, base: int, size: int, map_path: str | None = None,
                 preferred_base: int | None = None):
        self.module = module_name
        self.base = base
        self.size = size
        self.labels: dict[int, str] = {}  # names of addresses outside the module (the kernel's routines: nt!...)
        self._rvas: list[int] = []
        self._names: list[str] = []
        self.source = "none"
        if map_path:
            self._load_map(map_path, preferred_base)

    def _load_map(self, path: str, preferred_base: int | None) -> None:
        pref = preferred_base
        syms: dict[int, str] = {}
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if "Preferred load address is" in line:
                        try:
                            pref = int(line.rsplit(None, 1)[-1], 16)
                        except ValueError:
                            pass
                        continue
                    m = _MAP_LINE.match(line)  # section:offset name Rva+Base
                    if (not m or int(m.group(1), 16) == 0 or pref is None or int(m.group(4), 16) < pref
                            or m.group(3).startswith(("__imp_", "$", "."))):
                        continue
                    # an address's first name is kept (publics come before statics; both are fine)
                    syms.setdefault(int(m.group(4), 16) - pref, demangle(m.group(3)))
        except OSError:
            return
        if syms:
            self._rvas = sorted(syms)
            self._names = [syms[r] for r in self._rvas]
            self.source = os.path.basename(path)

    def contains(self, addr: int) -> bool:
        return self.base <= addr < self.base + self.size

    def lookup(self, addr: int) -> tuple[str | None, int]:
        """(function name or None, offset from it) for an address in the module."""
        rva = addr - self.base
        i = bisect.bisect_right(self._rvas, rva) - 1
        if i >= 0:
            return self._names[i], rva - self._rvas[i]
        return None, rva

    def fmt(self, addr: int) -> str:
        if addr in self.labels:
            return self.labels[addr]
        if not self.contains(addr):
            return f"0x{addr:x}"
        name, off = self.lookup(addr)
        if name is None:
            return f"{self.module}+0x{addr - self.base:x}"
        return f"{self.module}!{name}+0x{off:x}" if off else f"{self.module}!{name}"

    def raw(self, addr: int) -> str:
        return f"{self.module}+0x{addr - self.base:x}"


# ---------------------------------------------------------------- x64 unwinding

UWOP_PUSH_NONVOL, UWOP_ALLOC_LARGE, UWOP_ALLOC_SMALL, UWOP_SET_FPREG = 0, 1, 2, 3
UWOP_SAVE_NONVOL, UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128, UWOP_SAVE_XMM128_FAR = 4, 5, 8, 9
UWOP_PUSH_MACHFRAME = 10
SLOTS = {UWOP_SAVE_NONVOL: 2, UWOP_SAVE_NONVOL_FAR: 3, UWOP_SAVE_XMM128: 2, UWOP_SAVE_XMM128_FAR: 3}  # 16-bit slots
GPR_NAMES = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]


class Unwinder:
    """Virtual unwind of one frame with the image's RUNTIME_FUNCTION table (no epilog detection:
    frames we unwind are always stopped at a call, i.e. in a function body)."""

    def __init__(self, image_data_reader, base: int, runtime_functions: list[tuple[int, int, int]]):
        self.read = image_data_reader  # (addr, size) -> bytes
        self.base = base
        self.rfs = runtime_functions
        self._begins = [r[0] for r in runtime_functions]

    def find(self, rva: int):
        i = bisect.bisect_right(self._begins, rva) - 1
        if i >= 0 and self.rfs[i][0] <= rva < self.rfs[i][1]:
            return self.rfs[i]
        return None

    def unwind(self, pc: int, regs: dict[str, int], read_u64) -> tuple[int, dict[str, int]] | None:
        """Given pc and regs (rsp, rbp, ...), return (caller_pc, caller_regs) or None."""
        rva = pc - self.base
        rf = self.find(rva)
        regs = dict(regs)
        if rf is None:  # leaf function: return address at [rsp]
            ret = read_u64(regs["rsp"])
            regs["rsp"] += 8
            return ret, regs
        begin, _end, unwind_rva = rf
        for _depth in range(32):
            hdr = self.read(self.base + unwind_rva, 4)
            ver_flags, prolog_size, count, frame = hdr
            flags = ver_flags >> 3
            frame_reg = frame & 0xF
            frame_off = (frame >> 4) * 16
            codes = self.read(self.base + unwind_rva + 4, count * 2)
            off_in_func = rva - begin
            i = 0
            while i < count:
                code_off = codes[2 * i]
                op = codes[2 * i + 1] & 0xF
                info = codes[2 * i + 1] >> 4
                executed = off_in_func >= code_off
                if op == UWOP_PUSH_MACHFRAME:
                    return None
                nslots = (2 if info == 0 else 3) if op == UWOP_ALLOC_LARGE else SLOTS.get(op, 1)
                # the operand in the next slot(s): a 16-bit count of 8-byte units, or a 32-bit byte count
                operand = (0 if nslots == 1 else struct.unpack_from("<H", codes, 2 * i + 2)[0] * 8 if nslots == 2
                           else struct.unpack_from("<I", codes, 2 * i + 2)[0])
                if not executed:
                    pass
                elif op == UWOP_PUSH_NONVOL:
                    regs[GPR_NAMES[info]] = read_u64(regs["rsp"])
                    regs["rsp"] += 8
                elif op in (UWOP_ALLOC_LARGE, UWOP_ALLOC_SMALL):
                    regs["rsp"] += operand if op == UWOP_ALLOC_LARGE else info * 8 + 8
                elif op == UWOP_SET_FPREG:
                    regs["rsp"] = regs[GPR_NAMES[frame_reg]] - frame_off
                elif op in (UWOP_SAVE_NONVOL, UWOP_SAVE_NONVOL_FAR):
                    regs[GPR_NAMES[info]] = read_u64(regs["rsp"] + operand)
                i += nslots
            if flags & 0x4:  # UNW_FLAG_CHAININFO
                idx = (count + 1) & ~1
                chained = self.read(self.base + unwind_rva + 4 + idx * 2, 12)
                begin, _end, unwind_rva = struct.unpack("<III", chained)
                rva = begin + 0x7FFFFFFF  # all chained (parent) prolog codes are executed
                continue
            break
        ret = read_u64(regs["rsp"])
        regs["rsp"] += 8
        return ret, regs
