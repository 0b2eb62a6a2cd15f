"""The CPU and its memory: speakeasy maps the driver image into its unicorn engine (PE sections,
relocations, the IAT pointing at its sentinel page) and this module runs code on it, reporting calls
into the sentinel page, inline CR8 accesses and faults to `CpuEvents`, which the kernel model
implements; nothing here imports it."""

from __future__ import annotations

import ctypes
import logging
import struct

from unicorn import UcError
from unicorn.unicorn_py3.unicorn import uclib  # the C API the bindings wrap (unicorn 2.1.4, pinned)
from unicorn import (UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_INVALID, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE,
                     UC_MEM_FETCH_PROT, UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_UNMAPPED, UC_MEM_WRITE,
                     UC_MEM_WRITE_PROT, UC_MEM_WRITE_UNMAPPED, UC_PROT_ALL)
from unicorn.x86_const import (
    UC_X86_REG_CR8, UC_X86_REG_GS_BASE, UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15, UC_X86_REG_RAX, UC_X86_REG_RBP,
    UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDI, UC_X86_REG_RDX, UC_X86_REG_RFLAGS, UC_X86_REG_RIP,
    UC_X86_REG_RSI, UC_X86_REG_RSP,
)

PHYS_LIMIT = 1 << 52  # unicorn's x86-64 physical address space

STUB_BASE = 0xFEEDF000  # speakeasy's reserved page: its import sentinels start at +0xC
STUB_SIZE = 0x4000

# x64 general-purpose registers in ModRM/REX order
GPRS = [UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX, UC_X86_REG_RSP, UC_X86_REG_RBP,
        UC_X86_REG_RSI, UC_X86_REG_RDI, UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_R10, UC_X86_REG_R11,
        UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15]
NONVOLATILE = (("rbx", UC_X86_REG_RBX), ("rbp", UC_X86_REG_RBP), ("rsi", UC_X86_REG_RSI), ("rdi", UC_X86_REG_RDI),
               ("r12", UC_X86_REG_R12), ("r13", UC_X86_REG_R13), ("r14", UC_X86_REG_R14), ("r15", UC_X86_REG_R15))

ACCESS_KINDS = {UC_MEM_READ_UNMAPPED: "read", UC_MEM_WRITE_UNMAPPED: "write", UC_MEM_FETCH_UNMAPPED: "execute",
                UC_MEM_WRITE_PROT: "write (read-only page)", UC_MEM_FETCH_PROT: "execute (no-exec page)"}


def phys(addr: int) -> int:
    return addr & (PHYS_LIMIT - 1)


class CpuEvents:
    """What the CPU reports; the kernel model overrides these."""

    def on_call(self, addr: int) -> None:  # an instruction of the sentinel page is about to run
        raise NotImplementedError

    def on_cr8_read(self) -> int:
        return 0

    def on_cr8_write(self, value: int) -> None:
        pass

    def on_spin(self, pc: int) -> None:
        pass

    def on_interrupt(self, intno: int, pc: int) -> None:
        pass

    def on_bad_access(self, kind: str, address: int, size: int, pc: int) -> None:
        pass

    def on_watched_access(self, write: bool, address: int, pc: int) -> None:
        pass

    def on_sentinel_read(self, address: int, pc: int) -> None:  # a data read of the sentinel page
        pass


class Cpu:
    """One x86-64 CPU with the driver image loaded, and helpers to read and write its memory."""

    def __init__(self, image_path: str, size_of_image: int, sections, events: CpuEvents):
        self.events = events
        self._host_buffers: list = []
        self.kernel_maps: list[tuple[int, int, str]] = []
        self.cr8_sites: dict[int, tuple[str, int]] = {}
        self.spin_sites: set[int] = set()
        logging.getLogger("speakeasy").setLevel(logging.ERROR)
        from speakeasy.config import SpeakeasyConfig, get_default_config_dict
        from speakeasy.windows.kernel import WinKernelEmulator

        cfg = get_default_config_dict()
        cfg.setdefault("analysis", {})
        cfg["analysis"].update({"memory_tracing": False, "strings": False, "coverage": False})
        emu = WinKernelEmulator(config=SpeakeasyConfig.model_validate(cfg))
        # speakeasy: parse and map the PE, point every IAT slot at a sentinel in its reserved page,
        # set up the kernel address space (GDT, KUSER_SHARED_DATA, ...).
        self.module = emu.load_module(path=image_path)
        self.emu = emu
        assert emu.emu_eng is not None
        self.uc = emu.emu_eng.emu
        # The driver's calls read registers and small memory blocks ~10 times each: through the
        # C API with reused buffers, not the bindings' per-call register-class lookup and allocation.
        self._uch = self.uc._uch
        self._reg = ctypes.c_uint64()
        self._reg_ref = ctypes.byref(self._reg)
        self._small = ctypes.create_string_buffer(64)
        # The four argument registers, read in one call (uc_reg_read_batch).
        self._arg_ids = (ctypes.c_int * 4)(UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_R8, UC_X86_REG_R9)
        self._arg_vals = (ctypes.c_uint64 * 4)()
        self._arg_ptrs = (ctypes.c_void_p * 4)(*(ctypes.addressof(self._arg_vals) + 8 * i for i in range(4)))
        self.base = self.module.base
        self.size = size_of_image
        self.map(STUB_BASE, STUB_SIZE, "tdemu.stubs")
        self.uc.mem_write(STUB_BASE, b"\xc3" * STUB_SIZE)
        self.uc.hook_add(UC_HOOK_CODE, self._on_stub, begin=STUB_BASE, end=STUB_BASE + STUB_SIZE - 1)
        self.uc.hook_add(UC_HOOK_MEM_READ, self._on_sentinel_read, begin=STUB_BASE, end=STUB_BASE + STUB_SIZE - 1)
        self.uc.hook_add(UC_HOOK_MEM_INVALID, self._on_bad_mem)
        self.uc.hook_add(UC_HOOK_INTR, self._on_intr)
        self._scan_code(sections)

    def speakeasy_driver_object(self) -> tuple[int, int]:
        """speakeasy's DRIVER_OBJECT for the loaded image: (its address, the registry path's address)."""
        drv = self.emu.create_driver_object(pe=self.module)
        return drv.address, drv.reg_path_ptr

    # ------------------------------------------------------------------ mapping
    def map(self, base: int, size: int, tag: str) -> None:
        """Map host memory at a kernel-looking address. Unicorn (no guest paging, as speakeasy runs it)
        masks guest accesses to 52-bit physical addresses, so the same host buffer is also mapped at the
        masked alias: the driver sees ffff9709`ac3d4f20 and both views share the bytes."""
        size = (size + 0xFFF) & ~0xFFF
        if base < PHYS_LIMIT:
            self.emu.mem_map(size, base=base, tag=tag)
            return
        buf = ctypes.create_string_buffer(size)
        self._host_buffers.append(buf)
        self.uc.mem_map_ptr(base, size, UC_PROT_ALL, ctypes.addressof(buf))
        self.uc.mem_map_ptr(base & (PHYS_LIMIT - 1), size, UC_PROT_ALL, ctypes.addressof(buf))
        self.kernel_maps.append((base, size, tag))

    def kernel_address(self, address: int) -> int:
        """The kernel-looking address of an address unicorn reports (its masked alias)."""
        for base, size, _tag in self.kernel_maps:
            if phys(base) - 0x10000 <= address < phys(base) + size + 0x10000:
                return base - phys(base) + address
        return address

    def watch(self, start: int, end: int) -> None:
        """Report every guest read or write of [start, end) to CpuEvents.on_watched_access."""
        self.uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, self._on_watched, begin=phys(start),
                         end=phys(end) - 1)

    def set_gs_base(self, addr: int) -> None:
        self.uc.reg_write(UC_X86_REG_GS_BASE, addr)

    # ------------------------------------------------------------------ memory
    def _read(self, addr: int, size: int):
        buf = self._small if size <= 64 else ctypes.create_string_buffer(size)
        status = uclib.uc_mem_read(self._uch, addr, buf, size)
        if status:
            raise UcError(status, addr, size)  # type: ignore[call-arg]  # the address and size in its args
        return buf

    def mem(self, addr: int, size: int) -> bytes:
        return self._read(addr, size).raw[:size]

    def mem_write(self, addr: int, data: bytes) -> None:
        status = uclib.uc_mem_write(self._uch, addr, data, len(data))
        if status:
            raise UcError(status, addr, len(data))  # type: ignore[call-arg]

    def u32(self, addr: int) -> int:
        return struct.unpack_from("<I", self._read(addr, 4))[0]

    def u64(self, addr: int) -> int:
        return struct.unpack_from("<Q", self._read(addr, 8))[0]

    def reg(self, reg_id: int) -> int:
        uclib.uc_reg_read(self._uch, reg_id, self._reg_ref)
        return self._reg.value

    def w32(self, addr: int, v: int) -> None:
        self.mem_write(addr, struct.pack("<I", v & 0xFFFFFFFF))

    def w64(self, addr: int, v: int) -> None:
        self.mem_write(addr, struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

    def wstr(self, addr: int, nbytes: int) -> str:
        if not addr or nbytes <= 0:
            return ""
        return self.mem(addr, nbytes).decode("utf-16le", "replace")

    def cwstr(self, addr: int, limit: int = 4096) -> str:
        out = bytearray()
        while len(out) < limit * 2:
            chunk = self.mem(addr + len(out), 64)
            for k in range(0, 64, 2):
                if chunk[k] == 0 and chunk[k + 1] == 0:
                    out += chunk[:k]
                    return out.decode("utf-16le", "replace")
            out += chunk
        return out.decode("utf-16le", "replace")

    def cstr(self, addr: int, limit: int = 4096) -> str:
        out = bytearray()
        while len(out) < limit:
            chunk = self.mem(addr + len(out), 64)
            z = chunk.find(b"\0")
            if z >= 0:
                out += chunk[:z]
                break
            out += chunk
        return out.decode("latin-1")

    def unicode_string(self, addr: int) -> str:
        if not addr:
            return ""
        length, _maxlen, _pad, buf = struct.unpack("<HHIQ", self.mem(addr, 16))
        return self.wstr(buf, length)

    # ------------------------------------------------------------------ registers
    def args(self, n: int) -> list[int]:
        """The first n integer arguments of the call being made (x64: rcx, rdx, r8, r9, then the stack)."""
        in_regs = min(n, 4)
        status = uclib.uc_reg_read_batch(self._uch, self._arg_ids, self._arg_ptrs, in_regs)
        if status:
            raise UcError(status)
        a = self._arg_vals[:in_regs]
        if n > 4:
            a += struct.unpack_from(f"<{n - 4}Q", self._read(self.reg(UC_X86_REG_RSP) + 0x28, 8 * (n - 4)))
        return a

    def arg0(self) -> int:
        return self.reg(UC_X86_REG_RCX)

    def rsp(self) -> int:
        return self.reg(UC_X86_REG_RSP)

    def pc(self) -> int:
        return self.reg(UC_X86_REG_RIP)

    def rax(self) -> int:
        return self.reg(UC_X86_REG_RAX)

    def set_rax(self, v: int) -> None:
        self._reg.value = v & 0xFFFFFFFFFFFFFFFF
        uclib.uc_reg_write(self._uch, UC_X86_REG_RAX, self._reg_ref)

    def set_cr8(self, v: int) -> None:
        self.uc.reg_write(UC_X86_REG_CR8, v)

    def return_address(self) -> int:
        """At a call into the sentinel page: the caller's return address, [rsp]."""
        return self.u64(self.reg(UC_X86_REG_RSP))

    def nonvolatile(self) -> dict[str, int]:
        return {n: self.uc.reg_read(r) for n, r in NONVOLATILE}

    def pop_return(self) -> None:
        """Complete a call into the sentinel page as its `ret` would: rip = [rsp], rsp += 8."""
        rsp = self.uc.reg_read(UC_X86_REG_RSP)
        self.uc.reg_write(UC_X86_REG_RIP, self.u64(rsp))
        self.uc.reg_write(UC_X86_REG_RSP, rsp + 8)

    def start_context(self, pc: int, sp: int, ret: int, args: list[int]) -> None:
        """A fresh register context: pc with args in rcx, rdx, r8, r9, returning to ret."""
        uc = self.uc
        for r in GPRS:
            if r != UC_X86_REG_RSP:
                uc.reg_write(r, 0)
        for r, v in zip((UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_R8, UC_X86_REG_R9), args):
            uc.reg_write(r, v)
        sp -= 8
        self.w64(sp, ret)
        uc.reg_write(UC_X86_REG_RSP, sp)
        uc.reg_write(UC_X86_REG_RFLAGS, 0x202)
        uc.reg_write(UC_X86_REG_RIP, pc)

    def save(self):
        return self.uc.context_save()

    def restore(self, ctx) -> None:
        self.uc.context_restore(ctx)

    def run(self, pc: int, timeout_seconds: float) -> None:
        """Run from pc until a callback stops the CPU (or the time-out); UcError on a CPU exception."""
        self.uc.emu_start(pc, 0xFFFFFFFFFFFFFFFF, timeout=int(timeout_seconds * 1e6))

    def stop(self) -> None:
        self.uc.emu_stop()

    # ------------------------------------------------------------------ code scan and hooks
    def _scan_code(self, sections) -> None:
        """Find inline `mov reg, cr8` / `mov cr8, reg` (KeGetCurrentIrql/KeRaiseIrql/KeLowerIrql on x64)
        and `jmp $` (panic handlers that spin) in the driver's executable sections."""
        data = self.mem(self.base, self.size) if self.size < 0x4000000 else b""
        for _name, rva, vsize, chars in sections:
            if not chars & 0x20000000:  # IMAGE_SCN_MEM_EXECUTE
                continue
            code = data[rva: rva + vsize]
            i = code.find(b"\x0f")
            while i != -1:
                if i >= 1 and i + 2 < len(code) and code[i + 1] in (0x20, 0x22):
                    rex = code[i - 1]
                    modrm = code[i + 2]
                    if 0x40 <= rex <= 0x4F and rex & 0x4 and modrm >> 6 == 3 and (modrm >> 3) & 7 == 0:
                        reg = (modrm & 7) | (8 if rex & 1 else 0)
                        addr = self.base + rva + i - 1
                        self.cr8_sites[addr] = ("read" if code[i + 1] == 0x20 else "write", reg)
                i = code.find(b"\x0f", i + 1)
            j = code.find(b"\xeb\xfe")
            while j != -1:
                self.spin_sites.add(self.base + rva + j)
                j = code.find(b"\xeb\xfe", j + 1)
        for addr in self.cr8_sites:
            self.uc.hook_add(UC_HOOK_CODE, self._on_cr8, begin=addr, end=addr)
        for addr in self.spin_sites:
            self.uc.hook_add(UC_HOOK_CODE, self._on_spin, begin=addr, end=addr)

    def _on_stub(self, _uc, addr, _size, _ud):
        self.events.on_call(addr)

    def _on_sentinel_read(self, uc, _access, address, _size, _value, _ud):
        self.events.on_sentinel_read(address, uc.reg_read(UC_X86_REG_RIP))

    def _on_cr8(self, uc, addr, _size, _ud):
        kind, reg = self.cr8_sites[addr]
        if kind == "read":
            uc.reg_write(GPRS[reg], self.events.on_cr8_read())
        else:
            new = uc.reg_read(GPRS[reg]) & 0xF
            self.events.on_cr8_write(new)
            uc.reg_write(UC_X86_REG_CR8, new)
        uc.reg_write(UC_X86_REG_RIP, addr + 4)

    def _on_spin(self, _uc, addr, _size, _ud):
        self.events.on_spin(addr)

    def _on_intr(self, uc, intno, _ud):
        self.events.on_interrupt(intno, uc.reg_read(UC_X86_REG_RIP))

    def _on_bad_mem(self, uc, access, address, size, _value, _ud):
        kind = ACCESS_KINDS.get(access, str(access))
        self.events.on_bad_access(kind, self.kernel_address(address), size, uc.reg_read(UC_X86_REG_RIP))
        return False

    def _on_watched(self, uc, access, address, _size, _value, _ud):
        self.events.on_watched_access(access == UC_MEM_WRITE, address, uc.reg_read(UC_X86_REG_RIP))
