"""The kernel: binds each import of the driver to the handler its NT component registered (every IAT
entry points at a sentinel page; the CPU reports a call there to `Kernel.on_call`), dispatches the
calls, each checked against the routine's maximum IRQL, and runs DriverEntry, the driver's system
threads and DriverUnload on the machine. The components own their state.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import cast

from .. import ntstatus as st
from ..machine import BLOCK, Cpu, CpuEvents, Scheduler
from ..machine.cpu import STUB_BASE, STUB_SIZE
from ..pecheck import DriverImage
from ..symbols import Symbolizer, find_map_file
from . import ex, io, ke, mm, ob, ps, rtl, verifier
from ..explore import Chooser, SchedulePolicy
from .api import NTOSKRNL
from .ex import ex as EX
from .hal import hal as HAL
from .io import ENTRY_RETURN, UNLOAD_RETURN
from .io import io as IO
from .ke import KERNEL_STACK_SIZE, KThread
from .ke import ke as KE
from .ob import ob as OB
from .ps import THREAD_RETURN
from .ps import ps as PS
from .rtl import rtl as RTL

COMPONENTS = (KE, EX, IO, OB, PS, RTL, HAL)
STUB_NAMES = {THREAD_RETURN: "nt!PspSystemThreadStartup", ENTRY_RETURN: "nt!IopLoadDriver",
              UNLOAD_RETURN: "nt!IopUnloadDriver"}


# --fault KEY=N[:STATUS]: the Nth call of the routine fails with STATUS (Faults.KEY_fail_nth, KEY_fail_status)
NTH_CALL_FAULTS = {"thread": "PsCreateSystemThread", "reference": "ObReferenceObjectByHandle",
                   "zwwait": "ZwWaitForSingleObject"}


@dataclass
class Faults:
    missing_dirs: list = field(default_factory=list)
    create_fail_every: int = 0
    create_fail_status: int = st.STATUS_ACCESS_DENIED
    iocreatedevice_status: int | None = None
    thread_fail_nth: int = 0
    thread_fail_status: int = st.STATUS_INSUFFICIENT_RESOURCES
    reference_fail_nth: int = 0
    reference_fail_status: int = st.STATUS_OBJECT_TYPE_MISMATCH
    zwwait_fail_nth: int = 0
    zwwait_fail_status: int = st.STATUS_INVALID_HANDLE

    def describe(self) -> list[str]:
        out = [f"directory {d} missing" for d in self.missing_dirs]
        if self.create_fail_every:
            out.append(f"every {self.create_fail_every}th ZwCreateFile fails with {st.name(self.create_fail_status)}")
        if self.iocreatedevice_status is not None:
            out.append(f"IoCreateDevice fails with {st.name(self.iocreatedevice_status)}")
        for key, api in NTH_CALL_FAULTS.items():
            n, status = self.nth_call(key)
            if n:
                out.append(f"{api} call #{n} fails with {st.name(status)}")
        return out

    def nth_call(self, key: str) -> tuple[int, int]:
        """(N, STATUS) of --fault KEY=N[:STATUS] (N is 0 without it)."""
        return getattr(self, f"{key}_fail_nth"), getattr(self, f"{key}_fail_status")


@dataclass
class Options:
    order: str = "creation"  # creation | reverse
    allow_recursive_acquire: bool = False
    unload: str = "end"  # end | early | never
    faults: Faults = field(default_factory=Faults)
    map_path: str | None = None
    max_seconds: float = 60.0
    chooser: Chooser | None = None  # schedule exploration: asked at each choice point (tdemu.explore.Chooser)


def all_exports() -> dict:
    """((dll, name) -> Export) of every routine the components model."""
    out: dict = {}
    for comp in COMPONENTS:
        for name, e in comp.exports.items():
            key = (e.dll, name)
            if key in out:
                raise ValueError(f"{e.dll}!{name} exported by both {out[key].component} and {comp.name}")
            out[key] = e
    return out


FOOTPRINT_WORDS = {"arg0_object": "the object (1st argument)", "file_system": "the file system",
                   "everything": "everything (frees memory / stops)", "arg0_handle": "the handle",
                   "arg0_handle_and_file": "the handle (and the file system)", "device_list": "the device list",
                   "thread_list": "the thread list", "current_thread": "the calling thread's object",
                   "arg0_handle_and_object": "the handle and its object",
                   "delay": "nothing (a scheduling point)"}


def api_table() -> str:
    """The map from each modelled routine to its component and handler (markdown; emulator/README.md)."""
    from .defs import irql_name

    rows = ["| routine | exported by | component | handler | max IRQL checked | what it touches (for --explore) |",
            "|---|---|---|---|---|---|"]
    for (dll, name), e in sorted(all_exports().items(), key=lambda kv: (COMPONENTS.index(
            next(c for c in COMPONENTS if c.name == kv[1].component)), kv[0][1].lower())):
        handler = f"{e.handler.__module__.rsplit('.', 1)[-1]}.{e.handler.__name__}"
        alias = "" if handler.endswith("." + name) else " (same handler)"
        touches = FOOTPRINT_WORDS[e.footprint.__name__] if e.footprint else "its own data only"
        rows.append(f"| `{name}`{alias} | {dll} | `{e.component}` | `{handler}` | "
                    f"{irql_name(e.max_irql) if e.max_irql is not None else '-'} | {touches} |")
    return "\n".join(rows) + "\n"


class Kernel(CpuEvents):
    def __init__(self, image: DriverImage, opts: Options):
        self.image = image
        self.opts = opts
        self.t_start = time.perf_counter()
        self.calls: Counter = Counter()
        self.total_calls = 0
        self.events: list[dict] = []
        self.fatal: dict | None = None
        self._fault_call_counts: dict[str, int] = {}  # api -> calls so far, for --fault api=N
        self.unsupported: Counter = Counter()
        cpu = Cpu(image.path, image.size_of_image, image.sections, self)
        self.cpu = cpu
        self.base = cpu.base
        self.size = image.size_of_image
        self.driver_object, self.registry_path = cpu.speakeasy_driver_object()
        map_path = opts.map_path or find_map_file(image.path)
        self.sym = Symbolizer(image.name, self.base, self.size, map_path, image.image_base)
        self.sym.labels.update(STUB_NAMES)
        self.sched = Scheduler(cpu, opts.max_seconds, self.t_start)
        # each NT component's state, declared at the top of the module that owns it
        self.verifier = verifier.VerifierState()
        self.ke: ke.KeState = ke.init(self)
        self.ex: ex.ExState = ex.init(self)
        self.ob: ob.ObState = ob.init(self)
        self.ps = ps.PsState()
        self.io: io.IoState = io.init(self)
        self.rtl = rtl.RtlState()
        self.mm = mm.MmState()
        self.deadlock: dict | None = None
        self.stall_before_unload: dict | None = None
        self._forced: KThread | None = None  # the thread that runs next without a choice
        self.policy = None if opts.chooser is None else SchedulePolicy(self, opts.chooser)
        self._bind_imports()
        ob.setup_object_types(self)

    def _bind_imports(self) -> None:
        """Each IAT slot holds its sentinel (speakeasy wrote it); each sentinel gets the handler the
        component registered for that (dll, name). An import no component models has no handler: a
        call to it stops the run with an unsupported_api fault naming it."""
        self.stub_names: dict[int, str] = {}
        self.stub_dlls: dict[int, str] = {}
        exports = all_exports()
        self.handlers: dict = {}
        self.max_irql: dict = {}
        self.footprints: dict = {}
        spare = STUB_BASE + STUB_SIZE // 2  # for slots speakeasy filled with data of its own
        for rva, (dll, name) in self.image.iat.items():
            sentinel = self.cpu.u64(self.base + rva)
            if not STUB_BASE <= sentinel < STUB_BASE + STUB_SIZE:
                # speakeasy gave this import (an exported variable it knows) its own data: the model
                # does not, so the slot points at a sentinel too (`ob` rebinds the variables it models)
                sentinel = spare
                spare += 8
                self.cpu.w64(self.base + rva, sentinel)
            self.stub_names[sentinel] = name
            self.stub_dlls[sentinel] = dll
            self.sym.labels[sentinel] = f"{'nt' if dll == NTOSKRNL else dll.rsplit('.', 1)[0]}!{name}"
            e = exports.get((dll, name))
            if e is not None:
                self.handlers[name] = partial(e.handler, self)
                if e.max_irql is not None:
                    self.max_irql[name] = e.max_irql
                if e.footprint is not None:
                    self.footprints[name] = e.footprint

    # ------------------------------------------------------------------ what the components use
    @property
    def current(self) -> KThread | None:
        return cast("KThread | None", self.sched.current)  # the scheduler runs only KThreads

    @property
    def threads(self) -> list[KThread]:
        return cast("list[KThread]", self.sched.threads)

    def ret_site(self) -> int:
        return self.cpu.return_address()

    def new_handle(self, kind: str, obj, api: str, site: int, access: int = 0, path: str = "") -> int:
        return ob.new_handle(self, kind, obj, api, site, access, path)

    def event(self, text: str, t: KThread | None = None) -> None:
        self.events.append({"call": self.total_calls, "thread": t.name if t else None, "text": text})

    def injected_fault(self, key: str) -> int | None:
        """Counts this call to the routine of --fault KEY=N[:STATUS]; on the Nth, logs the injection
        and returns STATUS for the handler to return, else None."""
        api = NTH_CALL_FAULTS[key]
        nth, status = self.opts.faults.nth_call(key)
        n = self._fault_call_counts[api] = self._fault_call_counts.get(api, 0) + 1
        if not nth or n != nth:
            return None
        self.event(f"fault injected: {api} #{n} fails with {st.name(status)}", self.current)
        return status

    def violation(self, rule: str, text: str, site: int, t: KThread | None = None) -> None:
        verifier.violation(self, rule, text, site, t)

    def crash(self, kind: str, text: str, pc: int) -> None:
        """A fault that ends the run (the machine would bugcheck or hang)."""
        if self.fatal:
            return
        t = self.current
        self.fatal = {"kind": kind, "text": text, "pc": pc, "where": self.sym.fmt(pc) if pc else None,
                      "thread": t.name if t else None}
        self.sched.stop(("fatal",))

    def bugcheck(self, code: int, params: tuple, why: str, pc: int | None = None) -> None:
        """The machine stops with a bug check (KeBugCheckEx), as Windows would."""
        if self.fatal:
            return
        name = verifier.BUGCHECK_NAMES.get(code, "")
        self.crash("bugcheck", f"bugcheck {code:#x}{' ' + name if name else ''} "
                   f"({', '.join(f'{p:#x}' for p in params)}): {why}", self.ret_site() if pc is None else pc)
        assert self.fatal is not None
        self.fatal["bugcheck"] = {"code": code, "name": name or None, "parameters": list(params)}

    # ------------------------------------------------------------------ CPU events
    def on_call(self, addr: int) -> None:
        sched = self.sched
        t = self.current
        assert t is not None  # only a running thread makes calls
        if self.policy is not None and self.policy.choice_point(addr, t):
            return
        if addr in STUB_NAMES:  # a thread's routine returned
            if addr == THREAD_RETURN:
                sched.stop(("exit", self.cpu.rax() & 0xFFFFFFFF, "start routine returned"))
            elif addr == ENTRY_RETURN:
                self.io.driver_entry_status = self.cpu.rax() & 0xFFFFFFFF
                sched.stop(("exit", self.io.driver_entry_status, "DriverEntry returned"))
            else:
                self.io.unload_done = True
                sched.stop(("exit", 0, "DriverUnload returned"))
            return
        name = self.stub_names.get(addr)
        if name is None:
            self.crash("bad_call", f"call to unknown stub address {addr:#x}", addr)
            return
        self.total_calls += 1
        self.calls[name] += 1
        t.calls += 1
        h = self.handlers.get(name)
        maxirql = self.max_irql.get(name)
        if maxirql is not None and t.irql > maxirql:
            verifier.irql_too_high(self, name, t, maxirql)
        if h is None:
            dll = self.stub_dlls[addr]
            self.unsupported[f"{dll}!{name}"] += 1
            self.crash("unsupported_api", f"{dll}!{name} is not modelled by tdemu: the run stops rather than "
                       "guess what it does (see emulator/README.md for the routines each component models)",
                       self.ret_site())
            return
        rv = h()
        if rv is not None and rv is not BLOCK:
            self.cpu.set_rax(rv)

    def on_sentinel_read(self, address: int, pc: int) -> None:
        """The driver reads an import as data (an exported variable) that no component models."""
        a = max((a for a in self.stub_names if a <= address), default=None)
        what = f"{self.stub_dlls[a]}!{self.stub_names[a]}" if a is not None else f"{address:#x}"
        self.crash("unsupported_api", f"the driver reads {what} as data: an exported variable tdemu does not "
                   "model", pc)

    def on_watched_access(self, write: bool, address: int, pc: int) -> None:
        if not ob.opaque_access(self, write, address, pc):
            mm.freed_access(self, write, address, pc)

    def on_cr8_read(self) -> int:
        return ke.on_cr8_read(self)

    def on_cr8_write(self, value: int) -> None:
        ke.on_cr8_write(self, value)

    def on_spin(self, pc: int) -> None:
        self.crash("spin", "thread spins forever on `jmp $` (a panic handler?)", pc)

    def on_interrupt(self, intno: int, pc: int) -> None:
        if intno == 0x29:
            code = self.cpu.arg0()
            self.crash("fastfail", f"__fastfail({code}) -> bugcheck KERNEL_SECURITY_CHECK_FAILURE (0x139)", pc)
        elif intno == 3:
            self.crash("breakpoint", "int 3 (DbgBreakPoint) with no debugger attached", pc)
        elif intno == 0x2C:
            self.crash("assertion", "int 2c (NT_ASSERT) failed", pc)
        else:
            self.crash("interrupt", f"unexpected interrupt {intno:#x}", pc)

    def on_bad_access(self, kind: str, address: int, size: int, pc: int) -> None:
        t = self.current
        if t is not None and t.stack_top - KERNEL_STACK_SIZE - 0x1000 <= address < t.stack_top - KERNEL_STACK_SIZE:
            self.crash("stack_overflow", f"kernel stack overflow ({kind} at {address:#x})", pc)
        else:
            self.crash("page_fault", f"invalid {kind} of {size} byte{'s' if size != 1 else ''} at {address:#x} "
                       "(PAGE_FAULT_IN_NONPAGED_AREA)", pc)

    # ------------------------------------------------------------------ scheduling
    def _pick(self) -> KThread | None:
        """The thread that runs next: the one a preemption named, else the policy's choice among
        the ready threads (tdemu.explore.SchedulePolicy), else the first ready one."""
        sched = self.sched
        if self._forced is not None:
            t, self._forced = self._forced, None
            if t in sched.ready:
                sched.ready.remove(t)
            return t
        if self.policy is None or len(sched.ready) < 2:
            return cast("KThread | None", sched.next_ready())
        return self.policy.pick()

    @staticmethod
    def resume(t: KThread) -> bool:
        """Run a woken thread's resume check (e.g. retry the lock); False: it waits again."""
        chk, t.resume_check = t.resume_check, None
        return chk is None or chk(t)

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        sched = self.sched
        loader = io.start_driver_entry(self)
        entry_done = False
        while not self.fatal:
            t = self._pick()
            if t is not None:
                if not self.resume(t):
                    continue  # waits again
                self.run_slice(t)
                if t is loader and t.state == "Terminated" and not entry_done:
                    entry_done = True
                    io.after_driver_entry(self)
                elif t is loader and t.state == "Waiting":
                    io.start_pending_threads(self)  # DriverEntry waits: the threads it started run
                continue
            if ke.fire_timers(self):
                continue
            waiting = [t for t in self.threads if t.state == "Waiting"]
            if (entry_done and not self.io.unload_started and self.opts.unload == "end"
                    and self.io.driver_entry_status is not None and st.is_success(self.io.driver_entry_status)):
                # Nothing can run: the I/O manager calls DriverUnload. A thread waiting now is not
                # deadlocked yet: DriverUnload may wake it (a stop event), so the stall is kept
                # and only confirmed if the same waits are still there when nothing can run again.
                if waiting:
                    self.stall_before_unload = verifier.analyse_deadlock(self, waiting, log=False)
                io.start_unload(self)
                continue
            if waiting:
                self._confirm_deadlock(waiting)
            break
        if not self.fatal:
            io.check_devices_deleted(self)
        if self.fatal and self.deadlock is None and self.stall_before_unload is not None:
            # DriverUnload faulted: the threads that waited when it was called never ran again
            self.deadlock = self.stall_before_unload
            self.deadlock["before_fault"] = True
        self.wall = time.perf_counter() - self.t_start

    def _confirm_deadlock(self, waiting: list[KThread]) -> None:
        """No thread can run, some wait, and nothing is left to call: a deadlock. If it is the stall
        seen before DriverUnload (the same threads on the same objects), that snapshot is the one
        reported; the state after unload is added as `after_unload`."""
        stall = self.stall_before_unload
        if stall is not None and all(
                (t.state == "Waiting" and t.wait is not None and t.wait.obj == e["waits_on"])
                for e in stall["edges"] for t in [self.ke.by_ethread[e["ethread"]]]):
            self.deadlock = stall
            self.event("deadlock detected: " + stall["summary"])
        else:
            self.deadlock = verifier.analyse_deadlock(self, waiting)
        if self.io.unload_started:
            # the state after unload (e.g. unload itself blocked) is recorded too
            self.deadlock["after_unload"] = verifier.analyse_deadlock(self, waiting, brief=True)

    def run_slice(self, t: KThread) -> tuple:
        t.pending = None
        stop = self.sched.run_slice(t)
        kind = stop[0]
        if kind == "timeout":
            self.crash("timeout", f"thread {t.name} still running after --max-seconds={self.opts.max_seconds} "
                       "(runaway loop?)" if stop[2] else f"run exceeded --max-seconds={self.opts.max_seconds}", stop[1])
        elif kind == "cpu_exception":
            self.crash("cpu_exception", stop[1], stop[2])
        elif kind == "exit":
            ps.exit_thread(self, t, stop[1], stop[2])
        elif kind == "preempt":
            self.sched.make_ready(t)
            self._forced = stop[1]
        elif kind == "reposition":
            assert self.policy is not None
            self.policy.position_ready()
            self._forced = t
        return stop


__all__ = ["Faults", "Kernel", "NTH_CALL_FAULTS", "Options", "all_exports", "api_table"]
