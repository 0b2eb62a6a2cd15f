"""The emulated kernel: speakeasy loads the driver image (PE mapping, imports, DRIVER_OBJECT,
registry path) into its unicorn engine; this module runs it with a kernel model of its own:

* system threads with their own stacks, ETHREAD objects and register contexts, scheduled
  cooperatively (a thread runs until it blocks or ends; the first-run order is an option);
* FAST_MUTEX modelled on the driver's own memory, as Windows does it (Count/Owner/Contention/OldIrql);
* per-thread IRQL (mirrored in CR8; inline `mov reg, cr8` / `mov cr8, reg` in the driver are served
  from the model) and KernelApcDisable (critical regions);
* a handle table, a virtual file system, dispatcher objects (threads, events), pool, devices;
* Driver Verifier-style checks (IRQL rules, fast mutex rules, handle and reference leaks,
  use of freed device memory) and deadlock detection (no runnable thread left while some wait).

Every driver call into ntoskrnl lands on a stub page (the IAT entries speakeasy writes point
there); a unicorn code hook limited to that page dispatches it to a handler here.
"""

from __future__ import annotations

import ctypes
import logging
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from unicorn import UC_PROT_ALL, UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_INVALID, UcError
from unicorn import UC_MEM_WRITE, UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_UNMAPPED, UC_MEM_WRITE_PROT, UC_MEM_FETCH_PROT
from unicorn.x86_const import (
    UC_X86_REG_CR8, UC_X86_REG_GS_BASE, UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15, UC_X86_REG_RAX, UC_X86_REG_RBP,
    UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDI, UC_X86_REG_RDX, UC_X86_REG_RFLAGS, UC_X86_REG_RIP,
    UC_X86_REG_RSI, UC_X86_REG_RSP,
)

from . import ntstatus as st
from . import vfs as V
from .pecheck import DriverImage
from .symbols import Symbolizer, Unwinder, find_map_file

log = logging.getLogger("tdemu")

PASSIVE_LEVEL, APC_LEVEL, DISPATCH_LEVEL, HIGH_LEVEL = 0, 1, 2, 15
IRQL_NAMES = {0: "PASSIVE_LEVEL", 1: "APC_LEVEL", 2: "DISPATCH_LEVEL", 15: "HIGH_LEVEL"}

# FAST_MUTEX (x64): Count LONG +0x0, Owner +0x8, Contention ULONG +0x10, Event KEVENT +0x18, OldIrql +0x30
FM_LOCK_BIT, FM_LOCK_WAITER_WOKEN, FM_LOCK_WAITER_INC = 1, 2, 4
FAST_MUTEX_SIZE = 0x38

STUB_BASE = 0xFEEDF000  # speakeasy's reserved page: its import sentinels start at +0xC
STUB_SIZE = 0x4000
THREAD_RETURN = STUB_BASE + 0  # start routine returns here: nt!PspSystemThreadStartup
ENTRY_RETURN = STUB_BASE + 1  # DriverEntry returns here: nt!IopLoadDriver
UNLOAD_RETURN = STUB_BASE + 2  # DriverUnload returns here: nt!IopUnloadDriver
STUB_NAMES = {THREAD_RETURN: "nt!PspSystemThreadStartup", ENTRY_RETURN: "nt!IopLoadDriver",
              UNLOAD_RETURN: "nt!IopUnloadDriver"}

# Kernel-looking addresses (the first two ETHREADs and thread ids echo the seed's dump).
ETHREAD_ADDRS = [0xFFFF9709AC20E040, 0xFFFF9709AB278040, 0xFFFF9709AC3F1040, 0xFFFF9709AB5C2040]
THREAD_IDS = [0xDD8, 0xC80, 0xE24, 0xA6C]
LOADER_ETHREAD, LOADER_TID = 0xFFFF9709A5581040, 0x1F4
UNLOAD_ETHREAD, UNLOAD_TID = 0xFFFF9709A55A4040, 0x218
STACK_REGION = 0xFFFFBB0CB2752000  # stacks: 0x6000 bytes each, 64 KiB apart, guard pages unmapped
KERNEL_STACK_SIZE = 0x6000
DEVICE_PAGE = 0xFFFF9709AC3D4000
DEVICE_OFFSET = 0xDD0  # DEVICE_OBJECT here, extension at +0x150 -> FAST_MUTEX at ...4f20 like the seed
DEVICE_OBJECT_SIZE = 0x150
POOL_BASE, POOL_SIZE = 0xFFFF9709AD000000, 0x200000
KPCR_BASE = 0xFFFFF8032A5F4000
NTDATA_BASE = 0xFFFFF8032861A000
SYSTEM_PROCESS = 0xFFFF9709A54E7040

# dispatcher object types (DISPATCHER_HEADER.Type)
NOTIFICATION_EVENT, SYNCHRONIZATION_EVENT, THREAD_OBJECT = 0, 1, 6

OBJ_KERNEL_HANDLE = 0x200
WAIT_REASONS = {0: "Executive", 1: "FreePage", 2: "PageIn", 3: "PoolAllocation", 4: "DelayExecution",
                5: "Suspended", 6: "UserRequest", 7: "WrExecutive", 8: "WrFreePage", 9: "WrPageIn",
                10: "WrPoolAllocation", 11: "WrDelayExecution", 12: "WrSuspended", 13: "WrUserRequest",
                14: "WrEventPair", 15: "WrQueue", 16: "WrLpcReceive", 17: "WrLpcReply", 18: "WrVirtualMemory",
                19: "WrPageOut", 20: "WrRendezvous", 21: "WrKeyedEvent", 22: "WrTerminated",
                23: "WrProcessInSwap", 24: "WrCpuRateControl", 25: "WrCalloutStack", 26: "WrKernel",
                27: "WrResource", 28: "WrPushLock", 29: "WrMutex", 30: "WrQuantumEnd", 31: "WrDispatchInt",
                32: "WrPreempted", 33: "WrYieldExecution", 34: "WrFastMutex", 35: "WrGuardedMutex"}

# Documented maximum IRQL of each modelled API (WDK reference pages).
MAX_IRQL = {
    "ZwCreateFile": PASSIVE_LEVEL, "ZwOpenFile": PASSIVE_LEVEL, "ZwWriteFile": PASSIVE_LEVEL,
    "ZwReadFile": PASSIVE_LEVEL, "ZwSetInformationFile": PASSIVE_LEVEL, "ZwQueryInformationFile": PASSIVE_LEVEL,
    "ZwClose": PASSIVE_LEVEL, "NtClose": PASSIVE_LEVEL,
    "IoCreateDevice": PASSIVE_LEVEL, "IoDeleteDevice": PASSIVE_LEVEL,
    "PsCreateSystemThread": PASSIVE_LEVEL, "PsTerminateSystemThread": PASSIVE_LEVEL,
    "ObReferenceObjectByHandle": PASSIVE_LEVEL,
    "ObfDereferenceObject": DISPATCH_LEVEL, "ObDereferenceObject": DISPATCH_LEVEL,
    "ObfReferenceObject": DISPATCH_LEVEL,
    "ExAcquireFastMutex": APC_LEVEL, "ExReleaseFastMutex": APC_LEVEL, "ExTryToAcquireFastMutex": APC_LEVEL,
    "ExAcquireFastMutexUnsafe": APC_LEVEL, "ExReleaseFastMutexUnsafe": APC_LEVEL,
    "KeEnterCriticalRegion": APC_LEVEL, "KeLeaveCriticalRegion": APC_LEVEL,
    "KeEnterGuardedRegion": APC_LEVEL, "KeLeaveGuardedRegion": APC_LEVEL,
    "KeWaitForSingleObject": DISPATCH_LEVEL, "KeDelayExecutionThread": APC_LEVEL,
    "KeSetEvent": DISPATCH_LEVEL, "KeResetEvent": DISPATCH_LEVEL, "KeClearEvent": DISPATCH_LEVEL,
    "KeReadStateEvent": DISPATCH_LEVEL,
    "KeInitializeEvent": HIGH_LEVEL, "RtlInitUnicodeString": DISPATCH_LEVEL,
    "ExAllocatePool2": DISPATCH_LEVEL, "ExAllocatePoolWithTag": DISPATCH_LEVEL, "ExAllocatePool": DISPATCH_LEVEL,
    "ExFreePoolWithTag": DISPATCH_LEVEL, "ExFreePool": DISPATCH_LEVEL,
}

PHYS_LIMIT = 1 << 52  # unicorn's x86-64 physical address space


def phys(addr: int) -> int:
    return addr & (PHYS_LIMIT - 1)


@dataclass
class Wait:
    kind: str  # mutex | thread | event | delay
    reason: str  # WrFastMutex | Executive | ...
    obj: int
    function: str  # nt!ExAcquireFastMutex
    ret_addr: int
    rsp: int
    regs: dict
    call_no: int
    old_irql: int = 0
    unsafe: bool = False
    timeout_at: int | None = None


@dataclass
class KThread:
    name: str
    start: int
    arg: int
    ethread: int
    tid: int
    stack_top: int
    kind: str = "driver"  # driver | loader | unload
    state: str = "Initialized"  # Initialized, Ready, Running, Waiting, Terminated
    ctx: object = None
    started: bool = False
    irql: int = PASSIVE_LEVEL
    apc_disable: int = 0
    wait: Wait | None = None
    pending_rax: int | None = None
    resume_check: object = None
    cswitches: int = 0
    exit_status: int | None = None
    exit_how: str = ""
    created_by_site: int = 0
    create_index: int = 0
    acquires: list = field(default_factory=list)  # (mutex, call_site)
    held: list = field(default_factory=list)  # mutex addrs
    last_wait: Wait | None = None
    calls: int = 0


@dataclass
class Handle:
    value: int
    kind: str  # file | thread
    obj: object
    api: str
    site: int
    thread: str
    access: int = 0
    path: str = ""


@dataclass
class Faults:
    missing_dirs: list = field(default_factory=list)
    create_fail_every: int = 0
    create_fail_status: int = st.STATUS_ACCESS_DENIED
    iocreatedevice_status: int | None = None
    thread_fail_nth: int = 0
    thread_fail_status: int = st.STATUS_INSUFFICIENT_RESOURCES

    def describe(self) -> list[str]:
        out = [f"directory {d} missing" for d in self.missing_dirs]
        if self.create_fail_every:
            out.append(f"every {self.create_fail_every}th ZwCreateFile fails with {st.name(self.create_fail_status)}")
        if self.iocreatedevice_status is not None:
            out.append(f"IoCreateDevice fails with {st.name(self.iocreatedevice_status)}")
        if self.thread_fail_nth:
            out.append(f"PsCreateSystemThread call #{self.thread_fail_nth} fails with {st.name(self.thread_fail_status)}")
        return out


@dataclass
class Options:
    order: str = "creation"  # creation | reverse
    allow_recursive_acquire: bool = False
    unload: str = "end"  # end | early | never
    faults: Faults = field(default_factory=Faults)
    map_path: str | None = None
    max_seconds: float = 60.0
    keep_file_data: bool = True


class Machine:
    def __init__(self, image: DriverImage, opts: Options):
        self.image = image
        self.opts = opts
        self.t_start = time.perf_counter()
        self.threads: list[KThread] = []
        self.ready: deque[KThread] = deque()
        self.current: KThread | None = None
        self.pending_driver_threads: list[KThread] = []
        self.calls: Counter = Counter()
        self.total_calls = 0
        self.irql_violations: dict = {}  # (api, irql, site) -> dict
        self.verifier: list[dict] = []
        self._verifier_keys: dict = {}
        self.events: list[dict] = []
        self.dbgprint: list[str] = []
        self.handles: dict[int, Handle] = {}
        self._next_handle = 0xFFFFFFFF80000F24
        self.closed_invalid: list[dict] = []
        self.refs: dict[int, dict] = {}  # object addr -> {count, sites}
        self.pool: dict[int, tuple[int, int, str]] = {}  # addr -> size, tag, site
        self._pool_next = POOL_BASE
        self.devices: dict[int, dict] = {}
        self.freed: list[dict] = []
        self.uaf: list[dict] = []
        self._uaf_seen: set = set()
        self.mutexes: dict[int, dict] = {}  # FAST_MUTEX addr -> {waiters: [KThread], ...}
        self.mutex_waiters: dict[int, list[KThread]] = {}
        self.event_waiters: dict[int, list[KThread]] = {}
        self.thread_waiters: dict[int, list[KThread]] = {}
        self.by_ethread: dict[int, KThread] = {}
        self.fatal: dict | None = None
        self.deadlock: dict | None = None
        self.driver_entry_status: int | None = None
        self.unload_started = False
        self.unload_done = False
        self.virtual_time = 0  # 100 ns units
        self.vfs = V.VFS()
        for d in opts.faults.missing_dirs:
            self.vfs.rmdir(d)
        self._create_count = 0
        self._thread_create_count = 0
        self._stop = None
        self._host_buffers: list = []
        self.kernel_maps: list = []
        self.cr8_sites: dict[int, tuple] = {}
        self.spin_sites: set = set()
        self.unsupported: Counter = Counter()
        self.speakeasy_calls: Counter = Counter()
        self._boot()

    # ------------------------------------------------------------------ boot
    def _boot(self) -> None:
        logging.getLogger("speakeasy").setLevel(logging.ERROR)
        from speakeasy.config import SpeakeasyConfig, get_default_config_dict
        from speakeasy.windows.kernel import WinKernelEmulator

        cfg = get_default_config_dict()
        cfg.setdefault("analysis", {})
        cfg["analysis"].update({"memory_tracing": False, "strings": False, "coverage": False})
        config = SpeakeasyConfig.model_validate(cfg)
        emu = WinKernelEmulator(config=config)
        # speakeasy: parse and map the PE, resolve its imports to its sentinel addresses,
        # set up the kernel address space (GDT, KUSER_SHARED_DATA, decoy ntoskrnl, ...).
        mod = emu.load_module(path=self.image.path)
        self.emu = emu
        self.mod = mod
        self.uc = emu.emu_eng.emu
        self.base = mod.base
        self.size = self.image.size_of_image
        drv = emu.create_driver_object(pe=mod)
        self.driver_object = drv.address
        self.registry_path = drv.reg_path_ptr

        map_path = self.opts.map_path or find_map_file(self.image.path)
        self.sym = Symbolizer(self.image.name, self.base, self.size, map_path, self.image.image_base)
        self.unwinder = Unwinder(self.mem, self.base, self.image.runtime_functions)

        # Import stubs: speakeasy's import table maps each IAT sentinel to (dll, name).
        self._map(STUB_BASE, STUB_SIZE, "tdemu.stubs")
        self.uc.mem_write(STUB_BASE, b"\xc3" * STUB_SIZE)
        self.stub_names: dict[int, str] = {}
        for addr, (_dll, name) in emu.import_table.items():
            if STUB_BASE <= addr < STUB_BASE + STUB_SIZE:
                self.stub_names[addr] = name
        # Kernel structures
        self._map(KPCR_BASE, 0x2000, "tdemu.kpcr")
        self._map(NTDATA_BASE, 0x1000, "tdemu.ntdata")
        self._map(POOL_BASE, POOL_SIZE, "tdemu.pool")
        self.uc.reg_write(UC_X86_REG_GS_BASE, KPCR_BASE)
        self.handlers = self._handler_table()
        self._setup_data_imports()

        self.uc.hook_add(UC_HOOK_CODE, self._on_stub, begin=STUB_BASE, end=STUB_BASE + STUB_SIZE - 1)
        self.uc.hook_add(UC_HOOK_MEM_INVALID, self._on_bad_mem)
        self.uc.hook_add(UC_HOOK_INTR, self._on_intr)
        self._scan_code()

    def _map(self, base: int, size: int, tag: str) -> None:
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

    def _setup_data_imports(self) -> None:
        """Data imports (PsThreadType, IoFileObjectType, ...) are pointers to OBJECT_TYPE pointers."""
        data_syms = {"PsThreadType": "Thread", "PsProcessType": "Process", "IoFileObjectType": "File",
                     "ExEventObjectType": "Event", "IoDeviceObjectType": "Device", "IoDriverObjectType": "Driver",
                     "SeTokenObjectType": "Token", "ExSemaphoreObjectType": "Semaphore"}
        self.object_types: dict[int, str] = {}
        self.type_cells: dict[str, int] = {}
        cell = NTDATA_BASE + 0x800
        obj = NTDATA_BASE + 0x100
        for rva, (_dll, name) in self.image.iat.items():
            if name in data_syms:
                tname = data_syms[name]
                if tname not in self.type_cells:
                    # OBJECT_TYPE: Name UNICODE_STRING at +0x10 (just enough for a debugger-like dump)
                    self.mem_write(cell, struct.pack("<Q", obj))
                    self.object_types[obj] = tname
                    self.type_cells[tname] = cell
                    cell += 8
                    obj += 0x80
                self.mem_write(self.base + rva, struct.pack("<Q", self.type_cells[tname]))
                # not a call target: remove the sentinel name so calls through it are reported
        self.thread_type = None
        for o, n in self.object_types.items():
            if n == "Thread":
                self.thread_type = o

    def _scan_code(self) -> None:
        """Find inline `mov reg, cr8` / `mov cr8, reg` (KeGetCurrentIrql/KeRaiseIrql/KeLowerIrql on x64)
        and `jmp $` (panic handlers that spin) in the driver's executable sections."""
        data = self.mem(self.base, self.size) if self.size < 0x4000000 else b""
        for name, rva, vsize, chars in self.image.sections:
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

    # ------------------------------------------------------------------ memory helpers
    def mem(self, addr: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(addr, size))

    def mem_write(self, addr: int, data: bytes) -> None:
        self.uc.mem_write(addr, data)

    def u32(self, addr: int) -> int:
        return struct.unpack("<I", self.uc.mem_read(addr, 4))[0]

    def u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.uc.mem_read(addr, 8))[0]

    def w32(self, addr: int, v: int) -> None:
        self.uc.mem_write(addr, struct.pack("<I", v & 0xFFFFFFFF))

    def w64(self, addr: int, v: int) -> None:
        self.uc.mem_write(addr, struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

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

    def args(self, n: int) -> list[int]:
        uc = self.uc
        a = [uc.reg_read(UC_X86_REG_RCX), uc.reg_read(UC_X86_REG_RDX), uc.reg_read(UC_X86_REG_R8),
             uc.reg_read(UC_X86_REG_R9)][:n]
        if n > 4:
            rsp = uc.reg_read(UC_X86_REG_RSP)
            a += struct.unpack(f"<{n - 4}Q", uc.mem_read(rsp + 0x28, 8 * (n - 4)))
        return a

    def fmt_sym(self, addr: int) -> str:
        if addr in STUB_NAMES:
            return STUB_NAMES[addr]
        if addr in self.stub_names:
            return "nt!" + self.stub_names[addr]
        return self.sym.fmt(addr)

    # ------------------------------------------------------------------ threads
    def _new_thread(self, name: str, start: int, arg: int, kind: str, ethread: int | None = None,
                    tid: int | None = None) -> KThread:
        idx = len(self.threads)
        if ethread is None:
            n = sum(1 for t in self.threads if t.kind == "driver")
            if n < len(ETHREAD_ADDRS):
                ethread, tid = ETHREAD_ADDRS[n], THREAD_IDS[n]
            else:
                ethread = 0xFFFF9709AC600040 + 0x1000 * n
                tid = 0x1000 + 4 * n
        stack_lo = STACK_REGION + 0x8000 + idx * 0x10000
        self._map(stack_lo, KERNEL_STACK_SIZE, f"tdemu.stack.{name}")
        page = ethread & ~0xFFF
        self._map(page, 0x1000, f"tdemu.ethread.{name}")
        # DISPATCHER_HEADER: Type=ThreadObject, Size (in ULONGs), SignalState=0
        self.mem_write(ethread, struct.pack("<BBBBi", THREAD_OBJECT, 0, 0x1A, 0, 0))
        t = KThread(name=name, start=start, arg=arg, ethread=ethread, tid=tid, stack_top=stack_lo + KERNEL_STACK_SIZE,
                    kind=kind, create_index=idx)
        self.threads.append(t)
        self.by_ethread[ethread] = t
        return t

    def _initial_context(self, t: KThread, ret: int, args: list[int]) -> None:
        uc = self.uc
        for r in (UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RSI, UC_X86_REG_RDI, UC_X86_REG_RBP, UC_X86_REG_R8,
                  UC_X86_REG_R9, UC_X86_REG_R10, UC_X86_REG_R11, UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14,
                  UC_X86_REG_R15, UC_X86_REG_RDX, UC_X86_REG_RCX):
            uc.reg_write(r, 0)
        for r, v in zip((UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_R8, UC_X86_REG_R9), args):
            uc.reg_write(r, v)
        rsp = t.stack_top - 0x100  # 16-byte aligned; room above for home space
        rsp -= 8
        self.w64(rsp, ret)
        uc.reg_write(UC_X86_REG_RSP, rsp)
        uc.reg_write(UC_X86_REG_RFLAGS, 0x202)
        uc.reg_write(UC_X86_REG_RIP, t.start)
        t.started = True

    def _make_ready(self, t: KThread, front: bool = False) -> None:
        t.state = "Ready"
        if front:
            self.ready.appendleft(t)
        else:
            self.ready.append(t)

    def _switch_in(self, t: KThread) -> int:
        uc = self.uc
        if not t.started:
            ret = {"driver": THREAD_RETURN, "loader": ENTRY_RETURN, "unload": UNLOAD_RETURN}[t.kind]
            args = [t.arg] if t.kind == "driver" else ([self.driver_object, self.registry_path]
                                                         if t.kind == "loader" else [self.driver_object])
            self._initial_context(t, ret, args)
        else:
            uc.context_restore(t.ctx)
            if t.pending_rax is not None:
                uc.reg_write(UC_X86_REG_RAX, t.pending_rax)
                t.pending_rax = None
        uc.reg_write(UC_X86_REG_CR8, t.irql)
        self.w64(KPCR_BASE + 0x188, t.ethread)  # KPRCB.CurrentThread (gs:[188h])
        self.w64(KPCR_BASE + 0x18, KPCR_BASE)  # KPCR.Self
        t.state = "Running"
        t.cswitches += 1
        self.current = t
        return uc.reg_read(UC_X86_REG_RIP)

    def _run_slice(self, t: KThread) -> None:
        pc = self._switch_in(t)
        self._stop = None
        remaining = self.opts.max_seconds - (time.perf_counter() - self.t_start)
        if remaining <= 0:
            self._fatal("timeout", f"run exceeded --max-seconds={self.opts.max_seconds}", pc)
            return
        try:
            self.uc.emu_start(pc, 0xFFFFFFFFFFFFFFFF, timeout=int(remaining * 1e6))
        except UcError as e:
            if not self.fatal:
                self._fatal("cpu_exception", f"{e}", self.uc.reg_read(UC_X86_REG_RIP))
            t.state = "Crashed"
            return
        stop = self._stop
        if stop is None:
            if not self.fatal:
                self._fatal("timeout", f"thread {t.name} still running after --max-seconds={self.opts.max_seconds}"
                            " (runaway loop?)", self.uc.reg_read(UC_X86_REG_RIP))
            t.state = "Running"
            return
        kind = stop[0]
        uc = self.uc
        if kind in ("block", "yield"):
            # Complete the call frame: the thread resumes at the return address with RAX set on wake.
            rsp = uc.reg_read(UC_X86_REG_RSP)
            ret = self.u64(rsp)
            uc.reg_write(UC_X86_REG_RIP, ret)
            uc.reg_write(UC_X86_REG_RSP, rsp + 8)
            t.ctx = uc.context_save()
            if kind == "yield":
                self._make_ready(t)
        elif kind == "exit":
            self._terminate(t, stop[1], stop[2])
        elif kind == "fatal":
            t.state = "Crashed"

    def _terminate(self, t: KThread, status: int, how: str) -> None:
        t.state = "Terminated"
        t.exit_status = status
        t.exit_how = how
        t.ctx = None
        # Verifier-style checks at thread exit
        if t.kind == "driver":
            if t.held:
                for m in t.held:
                    self._violation("thread_exit_holding_fast_mutex",
                                    f"{t.name} ended while still owning FAST_MUTEX {m:#x}", 0, t)
            if t.irql != PASSIVE_LEVEL:
                self._violation("thread_exit_irql",
                                f"{t.name} ended at {IRQL_NAMES.get(t.irql, t.irql)} (must return at PASSIVE_LEVEL)", 0, t)
            if t.apc_disable:
                self._violation("thread_exit_apc_disabled",
                                f"{t.name} ended inside {t.apc_disable} critical region(s) "
                                "(KERNEL_APC_PENDING_DURING_EXIT)", 0, t)
        self.mem_write(t.ethread + 4, struct.pack("<i", 1))  # signalled
        for w in self.thread_waiters.pop(t.ethread, []):
            self._wake(w, st.STATUS_SUCCESS)
        self.event(f"{t.name} ended ({how})", t)

    # ------------------------------------------------------------------ bookkeeping
    def event(self, text: str, t: KThread | None = None) -> None:
        self.events.append({"call": self.total_calls, "thread": t.name if t else None, "text": text})

    def _violation(self, rule: str, text: str, site: int, t: KThread | None = None) -> None:
        key = (rule, text, site)
        v = self._verifier_keys.get(key)
        if v:
            v["count"] += 1
            return
        v = {"rule": rule, "text": text, "call_site": self.fmt_sym(site) if site else None,
             "address": site or None, "thread": t.name if t else None, "count": 1, "first_call": self.total_calls}
        self._verifier_keys[key] = v
        self.verifier.append(v)

    def _fatal(self, kind: str, text: str, pc: int) -> None:
        if self.fatal:
            return
        t = self.current
        self.fatal = {"kind": kind, "text": text, "pc": pc, "where": self.fmt_sym(pc) if pc else None,
                      "thread": t.name if t else None}
        self._stop = ("fatal",)
        self.uc.emu_stop()

    # ------------------------------------------------------------------ hooks
    def _on_stub(self, uc, addr, size, _ud):
        t = self.current
        if addr == THREAD_RETURN:
            self._stop = ("exit", uc.reg_read(UC_X86_REG_RAX) & 0xFFFFFFFF, "start routine returned")
            uc.emu_stop()
            return
        if addr == ENTRY_RETURN:
            self.driver_entry_status = uc.reg_read(UC_X86_REG_RAX) & 0xFFFFFFFF
            self._stop = ("exit", self.driver_entry_status, "DriverEntry returned")
            uc.emu_stop()
            return
        if addr == UNLOAD_RETURN:
            self.unload_done = True
            self._stop = ("exit", 0, "DriverUnload returned")
            uc.emu_stop()
            return
        name = self.stub_names.get(addr)
        if name is None:
            self._fatal("bad_call", f"call to unknown stub address {addr:#x}", addr)
            return
        self.total_calls += 1
        self.calls[name] += 1
        t.calls += 1
        h = self.handlers.get(name)
        maxirql = MAX_IRQL.get(name)
        if maxirql is not None and t.irql > maxirql:
            site = self.u64(uc.reg_read(UC_X86_REG_RSP))
            key = (name, t.irql, site)
            v = self.irql_violations.get(key)
            if v is None:
                self.irql_violations[key] = {
                    "api": name, "irql": t.irql, "irql_name": IRQL_NAMES.get(t.irql, str(t.irql)),
                    "max_irql": maxirql, "max_irql_name": IRQL_NAMES.get(maxirql, str(maxirql)),
                    "call_site": self.fmt_sym(site), "address": site, "thread": t.name, "count": 1,
                    "first_call": self.total_calls}
            else:
                v["count"] += 1
        if h is None:
            rv = self._speakeasy_fallback(name)
        else:
            rv = h()
        if rv is not None and rv is not BLOCK:
            uc.reg_write(UC_X86_REG_RAX, rv)

    def _speakeasy_fallback(self, name: str):
        """APIs the model does not implement run on speakeasy's own ntoskrnl handlers."""
        api = self.emu.api
        mod, func_attrs = api.get_export_func_handler("ntoskrnl", name)
        if not func_attrs:
            self.unsupported[name] += 1
            self._fatal("unsupported_api", f"driver called ntoskrnl!{name}, which neither this model nor "
                        "speakeasy implements", self.u64(self.uc.reg_read(UC_X86_REG_RSP)))
            return None
        _hname, func, argc, conv, _ordinal = func_attrs
        argv = self.emu.get_func_argv(conv, argc if argc >= 0 else 4)
        self.speakeasy_calls[name] += 1
        try:
            rv = api.call_api_func(mod, func, argv, ctx={"func_name": f"ntoskrnl.{name}"})
        except Exception as e:  # noqa: BLE001 - report any handler failure as an emulation fault
            self._fatal("api_handler_error", f"speakeasy handler for {name} failed: {e}",
                        self.u64(self.uc.reg_read(UC_X86_REG_RSP)))
            return None
        return rv if isinstance(rv, int) else None

    def _on_cr8(self, uc, addr, size, _ud):
        kind, reg = self.cr8_sites[addr]
        regs = [UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX, UC_X86_REG_RSP, UC_X86_REG_RBP,
                UC_X86_REG_RSI, UC_X86_REG_RDI, UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_R10, UC_X86_REG_R11,
                UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15]
        t = self.current
        if kind == "read":
            uc.reg_write(regs[reg], t.irql)
            self.calls["(inline) KeGetCurrentIrql"] += 1
        else:
            new = uc.reg_read(regs[reg]) & 0xF
            self.calls["(inline) KeRaiseIrql/KeLowerIrql"] += 1
            t.irql = new
            uc.reg_write(UC_X86_REG_CR8, new)
        uc.reg_write(UC_X86_REG_RIP, addr + 4)

    def _on_spin(self, uc, addr, size, _ud):
        self._fatal("spin", "thread spins forever on `jmp $` (a panic handler?)", addr)

    def _on_intr(self, uc, intno, _ud):
        pc = uc.reg_read(UC_X86_REG_RIP)
        if intno == 0x29:
            code = uc.reg_read(UC_X86_REG_RCX)
            self._fatal("fastfail", f"__fastfail({code}) -> bugcheck KERNEL_SECURITY_CHECK_FAILURE (0x139)", pc)
        elif intno == 3:
            self._fatal("breakpoint", "int 3 (DbgBreakPoint) with no debugger attached", pc)
        elif intno == 0x2C:
            self._fatal("assertion", "int 2c (NT_ASSERT) failed", pc)
        else:
            self._fatal("interrupt", f"unexpected interrupt {intno:#x}", pc)

    def _on_bad_mem(self, uc, access, address, size, value, _ud):
        pc = uc.reg_read(UC_X86_REG_RIP)
        kind = {UC_MEM_READ_UNMAPPED: "read", UC_MEM_WRITE_UNMAPPED: "write", UC_MEM_FETCH_UNMAPPED: "execute",
                UC_MEM_WRITE_PROT: "write (read-only page)", UC_MEM_FETCH_PROT: "execute (no-exec page)"}.get(access,
                                                                                                          str(access))
        t = self.current
        for base, size, _tag in self.kernel_maps:  # report the kernel-looking address, not the alias
            if phys(base) - 0x10000 <= address < phys(base) + size + 0x10000:
                address = base - phys(base) + address
                break
        if t is not None and t.stack_top - KERNEL_STACK_SIZE - 0x1000 <= address < t.stack_top - KERNEL_STACK_SIZE:
            self._fatal("stack_overflow", f"kernel stack overflow ({kind} at {address:#x})", pc)
        else:
            self._fatal("page_fault", f"invalid {kind} of {size} bytes at {address:#x} "
                        "(PAGE_FAULT_IN_NONPAGED_AREA)", pc)
        return False

    def _on_freed_access(self, uc, access, address, size, value, _ud):
        for fr in self.freed:
            if phys(fr["start"]) <= address < phys(fr["end"]):
                pc = uc.reg_read(UC_X86_REG_RIP)
                t = self.current
                key = (pc, fr["start"])
                if key in self._uaf_seen:
                    return
                self._uaf_seen.add(key)
                rw = "write" if access == UC_MEM_WRITE else "read"
                address = fr["start"] + (address - phys(fr["start"]))
                rec = {"what": fr["what"], "access": rw, "address": address, "offset": address - fr["start"],
                       "pc": pc, "where": self.fmt_sym(pc), "thread": t.name if t else None,
                       "call": self.total_calls}
                self.uaf.append(rec)
                self._violation("use_after_free", f"{rw} of freed {fr['what']} at {address:#x} "
                                f"(+{address - fr['start']:#x})", pc, t)
                return

    def check_freed(self, addr: int, size: int, api: str) -> None:
        """An API given a pointer into freed memory uses it on the driver's behalf: a use-after-free too."""
        for fr in self.freed:
            if fr["start"] < addr + size and addr < fr["end"]:
                t = self.current
                site = self.ret_site()
                key = (site, fr["start"], api)
                if key in self._uaf_seen:
                    return
                self._uaf_seen.add(key)
                self.uaf.append({"what": fr["what"], "access": f"{api} on it", "address": addr,
                                 "offset": addr - fr["start"], "pc": site, "where": self.fmt_sym(site),
                                 "thread": t.name if t else None, "call": self.total_calls})
                self._violation("use_after_free", f"{api}({addr:#x}): the object lies in freed {fr['what']} "
                                f"(+{addr - fr['start']:#x})", site, t)
                return

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        loader = self._new_thread("DriverEntry (System worker, IopLoadDriver)", self.base + self.image.entry_rva,
                                  0, "loader", LOADER_ETHREAD, LOADER_TID)
        self._make_ready(loader)
        entry_done = False
        while not self.fatal:
            if self.ready:
                t = self.ready.popleft()
                if t.resume_check is not None:
                    chk, t.resume_check = t.resume_check, None
                    if not chk(t):
                        continue  # waits again
                self._run_slice(t)
                if t is loader and t.state == "Terminated" and not entry_done:
                    entry_done = True
                    self._after_driver_entry()
                continue
            if self._fire_timers():
                continue
            waiting = [t for t in self.threads if t.state == "Waiting"]
            if waiting and self.deadlock is None:
                self.deadlock = self._analyse_deadlock(waiting)
            if (entry_done and not self.unload_started and self.opts.unload == "end"
                    and self.driver_entry_status is not None and st.is_success(self.driver_entry_status)):
                self._start_unload()
                continue
            if waiting and self.deadlock is not None and self.unload_started:
                # the state after unload (e.g. unload itself blocked) is recorded too
                self.deadlock["after_unload"] = self._analyse_deadlock(waiting, brief=True)
            break
        self.wall = time.perf_counter() - self.t_start

    def _after_driver_entry(self) -> None:
        s = self.driver_entry_status
        self.event(f"DriverEntry returned {st.name(s)}")
        if not st.is_success(s):
            if self.pending_driver_threads:
                self._violation("driver_entry_failed_with_threads",
                                f"DriverEntry failed ({st.name(s)}) after starting "
                                f"{len(self.pending_driver_threads)} system thread(s): the image is unloaded "
                                "while they run", 0)
            # Windows unloads the image and never calls DriverUnload; the threads are not run.
            self.not_run = list(self.pending_driver_threads)
            return
        order = list(self.pending_driver_threads)
        if self.opts.order == "reverse":
            order.reverse()
        if self.opts.unload == "early":
            self._start_unload()
        for t in order:
            self._make_ready(t)
        self.pending_driver_threads = []

    def _start_unload(self) -> None:
        self.unload_started = True
        unload = self.u64(self.driver_object + 0x68)  # DRIVER_OBJECT.DriverUnload
        if not unload:
            self.event("DriverUnload is NULL: driver cannot be unloaded")
            self.unload_routine = None
            return
        self.unload_routine = unload
        t = self._new_thread("DriverUnload (System worker, IopUnloadDriver)", unload, 0, "unload",
                             UNLOAD_ETHREAD, UNLOAD_TID)
        self.event(f"calling DriverUnload {self.fmt_sym(unload)}")
        self._make_ready(t)

    def _fire_timers(self) -> bool:
        timed = [t for t in self.threads if t.state == "Waiting" and t.wait and t.wait.timeout_at is not None]
        if not timed:
            return False
        t = min(timed, key=lambda x: x.wait.timeout_at)
        self.virtual_time = max(self.virtual_time, t.wait.timeout_at)
        self._remove_waiter(t)
        self._wake(t, st.STATUS_TIMEOUT if t.wait.kind != "delay" else st.STATUS_SUCCESS)
        return True

    def _remove_waiter(self, t: KThread) -> None:
        w = t.wait
        for table in (self.mutex_waiters, self.event_waiters, self.thread_waiters):
            lst = table.get(w.obj)
            if lst and t in lst:
                lst.remove(t)

    # ------------------------------------------------------------------ waits
    def _block(self, t: KThread, kind: str, reason: str, obj: int, function: str, **kw) -> object:
        uc = self.uc
        rsp = uc.reg_read(UC_X86_REG_RSP)
        regs = {n: uc.reg_read(r) for n, r in (("rbx", UC_X86_REG_RBX), ("rbp", UC_X86_REG_RBP),
                                               ("rsi", UC_X86_REG_RSI), ("rdi", UC_X86_REG_RDI),
                                               ("r12", UC_X86_REG_R12), ("r13", UC_X86_REG_R13),
                                               ("r14", UC_X86_REG_R14), ("r15", UC_X86_REG_R15))}
        regs["rsp"] = rsp + 8
        t.wait = Wait(kind=kind, reason=reason, obj=obj, function=function, ret_addr=self.u64(rsp), rsp=rsp,
                      regs=regs, call_no=self.total_calls, **kw)
        t.state = "Waiting"
        self._stop = ("block",)
        uc.emu_stop()
        return BLOCK

    def _wake(self, t: KThread, status: int, check=None) -> None:
        t.last_wait = t.wait
        t.wait = None
        t.pending_rax = status
        t.resume_check = check
        self._make_ready(t)

    def stack_of(self, t: KThread) -> list[dict]:
        """Call stack of a waiting thread, unwound with the driver's .pdata."""
        w = t.wait
        if w is None:
            return []
        frames = [{"child_sp": w.rsp, "ret": w.ret_addr, "site": w.function}]
        pc, regs = w.ret_addr, dict(w.regs)
        for _ in range(32):
            if not self.sym.contains(pc):
                frames.append({"child_sp": regs["rsp"], "ret": 0, "site": self.fmt_sym(pc)})
                break
            try:
                res = self.unwinder.unwind(pc, regs, self.u64)
            except (UcError, struct.error, IndexError, ValueError):
                res = None
            sp = regs["rsp"]
            if res is None:
                frames.append({"child_sp": sp, "ret": 0, "site": self.fmt_sym(pc)})
                break
            nxt, regs = res
            frames.append({"child_sp": sp, "ret": nxt, "site": self.fmt_sym(pc), "raw": self.sym.raw(pc)})
            pc = nxt
        return frames

    # ------------------------------------------------------------------ deadlock analysis
    def _owner_thread(self, w: Wait) -> KThread | None:
        if w.kind == "mutex":
            return self.by_ethread.get(self.u64(w.obj + 8))
        if w.kind == "thread":
            return self.by_ethread.get(w.obj)
        return None

    def _analyse_deadlock(self, waiting: list[KThread], brief: bool = False) -> dict:
        edges = []
        for t in waiting:
            w = t.wait
            owner = self._owner_thread(w)
            edges.append({"thread": t.name, "ethread": t.ethread, "waits_on": w.obj, "kind": w.kind,
                          "reason": w.reason, "owner": owner.name if owner else None,
                          "owner_ethread": owner.ethread if owner else None})
        # classify each wait
        waits = []
        for t in waiting:
            chain, why = self._why_forever(t)
            waits.append({"thread": t.name, "ethread": t.ethread, "why": why, "chain": chain})
        res = {"call": self.total_calls, "edges": edges, "waits": waits}
        if brief:
            return res
        res["threads"] = [self.thread_info(t) for t in self.threads]
        res["mutexes"] = [self.fast_mutex_info(m) for m in sorted({t.wait.obj for t in waiting
                                                                  if t.wait.kind == "mutex"})]
        res["summary"] = (f"{len(waiting)} thread(s) wait forever: " +
                          "; ".join(f"{w['thread']}: {w['why']}" for w in waits))
        self.event("deadlock detected: " + res["summary"])
        return res

    def _why_forever(self, t: KThread) -> tuple[list[str], str]:
        owner = self._owner_thread(t.wait)
        if owner is None:
            if t.wait.kind == "mutex":
                return [t.name], "the FAST_MUTEX has no owner, yet no thread will release it"
            return [t.name], "nothing can signal the object: no thread is runnable"
        if owner is t:
            return [t.name, t.name], "the owner is the waiting thread itself (recursive acquire)"
        path = [t]
        o = owner
        while True:
            if o in path:
                cyc = path[path.index(o):] + [o]
                return [x.name for x in path + [o]], "cycle: " + " -> ".join(x.name for x in cyc)
            path.append(o)
            names = [x.name for x in path]
            if o.state == "Terminated":
                return names, f"the owner {o.name} ended without releasing it"
            if o.state != "Waiting" or o.wait is None:
                return names, f"the owner {o.name} is {o.state}"
            nxt = self._owner_thread(o.wait)
            if nxt is o:
                return names + [o.name], (f"the owner {o.name} is blocked for ever: it waits for itself "
                                          "(recursive acquire)")
            if nxt is None:
                return names, f"the owner {o.name} waits for an object nothing will signal"
            o = nxt

    def thread_info(self, t: KThread) -> dict:
        d = {"name": t.name, "kind": t.kind, "ethread": t.ethread, "tid": t.tid, "state": t.state,
             "start": t.start, "start_symbol": self.fmt_sym(t.start), "irql": t.irql,
             "kernel_apc_disable": t.apc_disable, "cswitches": t.cswitches, "api_calls": t.calls,
             "exit_status": t.exit_status, "exit": t.exit_how or None}
        if t.wait:
            w = t.wait
            owner = self._owner_thread(w)
            d.update({"wait_reason": w.reason, "waiting_on": w.obj, "wait_kind": w.kind,
                      "wait_function": w.function, "call_site": self.fmt_sym(w.ret_addr),
                      "call_site_raw": self.sym.raw(w.ret_addr), "return_address": w.ret_addr,
                      "child_sp": w.rsp, "owner_ethread": owner.ethread if owner else None,
                      "owner": owner.name if owner else None, "stack": self.stack_of(t)})
        d["acquires"] = [{"mutex": m, "call_site": self.fmt_sym(s), "return_address": s} for m, s in t.acquires]
        return d

    def fast_mutex_info(self, m: int) -> dict:
        count, _pad, owner, contention, _pad2 = struct.unpack("<iIQII", self.mem(m, 0x18))
        ev_type, _, ev_size, _, ev_signal = struct.unpack("<BBBBi", self.mem(m + 0x18, 8))
        old_irql = self.u32(m + 0x30)
        return {"address": m, "Count": count, "Owner": owner, "Contention": contention,
                "Event": {"Type": ev_type, "Size": ev_size, "SignalState": ev_signal}, "OldIrql": old_irql,
                "owner_thread": self.by_ethread[owner].name if owner in self.by_ethread else None,
                "waiters": [t.name for t in self.mutex_waiters.get(m, [])]}

    # ------------------------------------------------------------------ handles
    def new_handle(self, kind: str, obj, api: str, site: int, access: int = 0, path: str = "") -> int:
        h = self._next_handle
        self._next_handle += 4
        self.handles[h] = Handle(h, kind, obj, api, site, self.current.name if self.current else "", access, path)
        return h

    def ret_site(self) -> int:
        return self.u64(self.uc.reg_read(UC_X86_REG_RSP))

    # ------------------------------------------------------------------ handler table
    def _handler_table(self) -> dict:
        from . import handlers

        return handlers.table(self)


BLOCK = object()
