"""ke: the kernel core (ReactOS ntoskrnl/ke): threads as the dispatcher sees them (KTHREAD), IRQL,
critical regions, dispatcher objects (events, thread objects) and waits on them, the clock."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import partial

from unicorn import UcError

from .. import ntstatus as st
from ..machine import BLOCK, Thread, Wait
from .api import Component, arg0_object, everything
from .defs import (APC_LEVEL, DISPATCH_LEVEL, HIGH_LEVEL, NOTIFICATION_EVENT, SYNCHRONIZATION_EVENT,
                   THREAD_OBJECT, WAIT_REASONS)
from .mm import check_freed
from .verifier import lock_acquire

ke = Component("ke")

KPCR_BASE = 0xFFFFF8032A5F4000
# Kernel-looking addresses (the first two ETHREADs and thread ids echo the seed's dump).
ETHREAD_ADDRS = [0xFFFF9709AC20E040, 0xFFFF9709AB278040, 0xFFFF9709AC3F1040, 0xFFFF9709AB5C2040]
THREAD_IDS = [0xDD8, 0xC80, 0xE24, 0xA6C]
STACK_REGION = 0xFFFFBB0CB2752000  # stacks: 0x6000 bytes each, 64 KiB apart, guard pages unmapped
KERNEL_STACK_SIZE = 0x6000
DELAY = frozenset({("delay",)})  # a scheduling point that touches nothing shared


@dataclass(eq=False)
class KThread(Thread):
    """A thread as the kernel model sees it: its ETHREAD, id, APC disable count and the locks it holds."""
    ethread: int = 0
    tid: int = 0
    apc_disable: int = 0  # KernelApcDisable: critical regions
    special_apc_disable: int = 0  # SpecialApcDisable: guarded regions
    exit_status: int | None = None
    exit_how: str = ""
    acquires: list = field(default_factory=list)  # (mutex, call_site)
    held: list = field(default_factory=list)  # mutex addrs


@dataclass
class KeState:
    """The clock, the threads by ETHREAD, who waits on which dispatcher object, the spin locks."""
    virtual_time: int = 0  # 100 ns units
    by_ethread: dict[int, KThread] = field(default_factory=dict)
    event_waiters: dict[int, list[KThread]] = field(default_factory=dict)
    thread_waiters: dict[int, list[KThread]] = field(default_factory=dict)
    spinlocks: dict[int, KThread] = field(default_factory=dict)  # KSPIN_LOCK address -> owner
    spin_waiters: dict[int, list[KThread]] = field(default_factory=dict)
    spin_lock_addrs: set[int] = field(default_factory=set)  # every KSPIN_LOCK taken: not FAST_MUTEXes


def init(k) -> KeState:
    k.cpu.map(KPCR_BASE, 0x2000, "tdemu.kpcr")
    k.cpu.set_gs_base(KPCR_BASE)

    def switch_in(t: KThread) -> None:
        k.cpu.w64(KPCR_BASE + 0x188, t.ethread)  # KPRCB.CurrentThread (gs:[188h])
        k.cpu.w64(KPCR_BASE + 0x18, KPCR_BASE)  # KPCR.Self
    k.sched.on_switch_in = switch_in
    return KeState()


def create_thread(k, name: str, start: int, kind: str, ret: int, args: list[int],
                  ethread: int | None = None, tid: int | None = None) -> KThread:
    """A new thread (KeInitializeThread): its stack, its ETHREAD (a thread dispatcher object, not signalled)."""
    idx = len(k.sched.threads)
    if ethread is None:
        n = sum(1 for t in k.sched.threads if t.kind == "driver")
        ethread, tid = ((ETHREAD_ADDRS[n], THREAD_IDS[n]) if n < len(ETHREAD_ADDRS)
                        else (0xFFFF9709AC600040 + 0x1000 * n, 0x1000 + 4 * n))
    stack_lo = STACK_REGION + 0x8000 + idx * 0x10000
    k.cpu.map(stack_lo, KERNEL_STACK_SIZE, f"tdemu.stack.{name}")
    k.cpu.map(ethread & ~0xFFF, 0x1000, f"tdemu.ethread.{name}")
    # DISPATCHER_HEADER: Type=ThreadObject, Size (in ULONGs), SignalState=0
    k.cpu.mem_write(ethread, struct.pack("<BBBBi", THREAD_OBJECT, 0, 0x1A, 0, 0))
    t = KThread(name=name, start=start, kind=kind, stack_top=stack_lo + KERNEL_STACK_SIZE, ret=ret,
                args=args, ethread=ethread, tid=tid or 0)
    k.sched.add(t)
    k.ke.by_ethread[ethread] = t
    return t


def set_irql(k, t: KThread, irql: int) -> None:
    t.irql = irql
    k.cpu.set_cr8(irql)


def block(k, t: KThread, kind: str, reason: str, obj: int, function: str, **kw):
    """The calling thread waits: its call site and non-volatile registers are kept for the stack walk."""
    rsp = k.cpu.rsp()
    return k.sched.block(t, Wait(kind=kind, reason=reason, obj=obj, function=function, ret_addr=k.cpu.u64(rsp),
                                 rsp=rsp, regs={**k.cpu.nonvolatile(), "rsp": rsp + 8}, **kw))


def remove_waiter(k, t: KThread) -> None:
    w = t.wait
    assert w is not None
    for table in (k.ex.mutex_waiters, k.ke.event_waiters, k.ke.thread_waiters, k.ke.spin_waiters):
        lst = table.get(w.obj)
        if lst and t in lst:
            lst.remove(t)


def fire_timers(k) -> bool:
    """Advance the virtual clock to the earliest timed wait and end it. False if there is none."""
    timed = [t for t in k.sched.threads if t.state == "Waiting" and t.wait and t.wait.timeout_at is not None]
    if not timed:
        return False
    t = min(timed, key=lambda x: x.wait.timeout_at)
    k.ke.virtual_time = max(k.ke.virtual_time, t.wait.timeout_at)
    remove_waiter(k, t)
    k.sched.wake(t, st.STATUS_TIMEOUT if t.wait.kind != "delay" else st.STATUS_SUCCESS)
    return True


def thread_ended(k, t: KThread) -> None:
    """The thread object is signalled: every thread waiting for it is woken."""
    k.cpu.mem_write(t.ethread + 4, struct.pack("<i", 1))
    for w in k.ke.thread_waiters.pop(t.ethread, []):
        k.sched.wake(w, st.STATUS_SUCCESS)


# ---------------------------------------------------------------- IRQL (ke/amd64/irql.c)

def on_cr8_read(k) -> int:
    k.calls["(inline) KeGetCurrentIrql"] += 1
    return k.sched.current.irql


def on_cr8_write(k, new: int) -> None:
    k.calls["(inline) KeRaiseIrql/KeLowerIrql"] += 1
    k.sched.current.irql = new


@ke.export()
def KeGetCurrentIrql(k):
    return k.sched.current.irql


@ke.export()
def KfRaiseIrql(k):
    t = k.sched.current
    new = k.cpu.arg0() & 0xFF
    old = t.irql
    if new < old:
        k.violation("raise_irql_lower", f"KfRaiseIrql({new}) below current IRQL {old}", k.ret_site(), t)
    set_irql(k, t, new)
    return old


@ke.export()
def KeLowerIrql(k):
    t = k.sched.current
    new = k.cpu.arg0() & 0xFF
    if new > t.irql:
        k.violation("lower_irql_higher", f"KeLowerIrql({new}) above current IRQL {t.irql}", k.ret_site(), t)
    set_irql(k, t, new)


@ke.export()
def KeRaiseIrqlToDpcLevel(k):
    t = k.sched.current
    old = t.irql
    set_irql(k, t, DISPATCH_LEVEL)
    return old


# ---------------------------------------------------------------- critical regions (ke/apc.c)

def _region(k, name: str, region: str, count: str) -> None:
    """KeEnter{region}Region: one more in the thread's count (apc_disable: critical regions,
    special_apc_disable: guarded ones); KeLeave{region}Region: one less."""
    t = k.sched.current
    n = getattr(t, count)
    if name.startswith("KeEnter"):
        setattr(t, count, n + 1)
        return
    if n <= 0:
        k.violation(f"{region.lower()}_region_underflow", f"KeLeave{region}Region without KeEnter{region}Region",
                    k.ret_site(), t)
        return
    setattr(t, count, n - 1)


ke.export_each(_region, {f"Ke{op}{region}Region": (region, count) for op in ("Enter", "Leave")
                         for region, count in (("Critical", "apc_disable"), ("Guarded", "special_apc_disable"))},
               max_irql=APC_LEVEL)


# ---------------------------------------------------------------- spin locks (ke/amd64/spinlock.c)
# One CPU runs the threads, but a spin lock is modelled as on a multiprocessor: a thread that finds
# it held spins (a wait of kind "spinlock") until the owner releases it.

def _take_spin(k, t: KThread, lock: int, site: int) -> None:
    k.ke.spinlocks[lock] = t
    k.ke.spin_lock_addrs.add(lock)
    k.cpu.w64(lock, 1)
    t.held.append(lock)
    t.acquires.append((lock, site))


def spin_acquire(k, lock: int, fn: str):
    t = k.sched.current
    site = k.ret_site()
    check_freed(k, lock, 8, fn)
    owner = k.ke.spinlocks.get(lock)
    lock_acquire(k, t, lock, "spin lock", site)
    if owner is None:
        _take_spin(k, t, lock, site)
        return None
    if owner is t:
        k.violation("spin_lock_recursive", f"{fn}: thread acquires spin lock {lock:#x} it already holds (it spins "
                    "for ever; Driver Verifier: bugcheck 0xC4)", site, t)
    k.ke.spin_waiters.setdefault(lock, []).append(t)
    return block(k, t, "spinlock", "SpinLock", lock, "nt!" + fn)


def spin_retry(k, t: KThread) -> bool:
    w = t.last_wait
    assert w is not None
    lock = w.obj
    if k.ke.spinlocks.get(lock) is None:
        _take_spin(k, t, lock, w.ret_addr)
        return True
    k.ke.spin_waiters.setdefault(lock, []).append(t)
    t.wait, t.state = t.last_wait, "Waiting"
    return False


def spin_release(k, lock: int, fn: str) -> None:
    t = k.sched.current
    check_freed(k, lock, 8, fn)
    if k.ke.spinlocks.get(lock) is not t:
        k.violation("spin_lock_release_not_owner", f"{fn}: spin lock {lock:#x} is not held by the caller",
                    k.ret_site(), t)
        return
    del k.ke.spinlocks[lock]
    k.cpu.w64(lock, 0)
    if lock in t.held:
        t.held.remove(lock)
    waiters = k.ke.spin_waiters.get(lock)
    if waiters:
        w = waiters.pop(0)
        k.sched.wake(w, w.wait.old_irql, partial(spin_retry, k))


@ke.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)
def KeAcquireSpinLockRaiseToDpc(k):
    t = k.sched.current
    old = t.irql
    set_irql(k, t, DISPATCH_LEVEL)
    rv = spin_acquire(k, k.cpu.arg0(), "KeAcquireSpinLockRaiseToDpc")
    if rv is BLOCK:
        t.wait.old_irql = old  # KeAcquireSpinLockRaiseToDpc returns it once the lock is taken
        return rv
    return old


@ke.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)
def KeReleaseSpinLock(k):
    lock, new_irql = k.cpu.args(2)
    spin_release(k, lock, "KeReleaseSpinLock")
    set_irql(k, k.sched.current, new_irql & 0xFF)


def _at_dispatch(k, fn: str) -> None:
    t = k.sched.current
    if t.irql < DISPATCH_LEVEL:
        k.violation("spin_lock_below_dispatch", f"{fn} at {t.irql}: must be called at DISPATCH_LEVEL",
                    k.ret_site(), t)


def _at_dpc_level(k, name: str, op):
    """Ke(Acquire|Release)SpinLock(AtDpcLevel|FromDpcLevel): the caller is at DISPATCH_LEVEL already."""
    _at_dispatch(k, name)
    return op(k, k.cpu.arg0(), name)


ke.export_each(_at_dpc_level, {"KeAcquireSpinLockAtDpcLevel": (spin_acquire,),
                               "KeReleaseSpinLockFromDpcLevel": (spin_release,)},
               max_irql=DISPATCH_LEVEL, footprint=arg0_object)


@ke.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)
def KeTryToAcquireSpinLockAtDpcLevel(k):
    _at_dispatch(k, "KeTryToAcquireSpinLockAtDpcLevel")
    lock = k.cpu.arg0()
    if lock in k.ke.spinlocks:
        return 0
    check_freed(k, lock, 8, "KeTryToAcquireSpinLockAtDpcLevel")
    _take_spin(k, k.sched.current, lock, k.ret_site())  # a try never waits: it orders nothing
    return 1


# ---------------------------------------------------------------- bug checks (ke/bug.c)

# wdk-panic's panic handler bug-checks with "RPNC" and the panic's file (pointer, length), line, column.
RUST_PANIC = 0x52504E43
MAX_FILE_NAME = 4096


def rust_panic_location(k, file: int, length: int, line: int, column: int) -> str:
    """FILE:LINE:COL of a Rust panic from wdk-panic's bug check parameters, the file name read from the
    driver's memory (wdk-panic passes zeros when the panic has no location)."""
    if not file or not length:
        return "an unknown location"
    if length > MAX_FILE_NAME:
        return f"<a {length}-byte file name at {file:#x}>:{line}:{column}"
    try:
        name = k.cpu.mem(file, length).decode("utf-8", "backslashreplace")
    except UcError:
        name = f"<unreadable file name at {file:#x}>"
    return f"{name}:{line}:{column}"


@ke.export(footprint=everything)
def KeBugCheckEx(k):
    code, p1, p2, p3, p4 = k.cpu.args(5)
    code &= 0xFFFFFFFF
    why = "the driver called KeBugCheckEx"
    if code == RUST_PANIC:
        why = f"Rust panic at {rust_panic_location(k, p1, p2, p3, p4)} (wdk-panic's bug check)"
    k.bugcheck(code, (p1, p2, p3, p4), why)
    return BLOCK


@ke.export(footprint=everything)
def KeBugCheck(k):
    k.bugcheck(k.cpu.arg0() & 0xFFFFFFFF, (0, 0, 0, 0), "the driver called KeBugCheck")
    return BLOCK


# ---------------------------------------------------------------- threads (ke/thrdobj.c)

@ke.export()
def KeGetCurrentThread(k):
    return k.sched.current.ethread


# ---------------------------------------------------------------- events (ke/eventobj.c)

def signal_state(k, obj: int) -> int:
    return struct.unpack("<i", k.cpu.mem(obj + 4, 4))[0]


@ke.export(max_irql=HIGH_LEVEL, footprint=arg0_object)
def KeInitializeEvent(k):
    ev, typ, state = k.cpu.args(3)
    check_freed(k, ev, 0x18, "KeInitializeEvent")
    typ &= 0xFF
    k.cpu.mem_write(ev, struct.pack("<BBBBiQQ", typ, 0, 6, 0, 1 if state & 0xFF else 0, ev + 8, ev + 8))


@ke.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)
def KeSetEvent(k):
    ev, _inc, _wait = k.cpu.args(3)
    check_freed(k, ev, 0x18, "KeSetEvent")
    prev = signal_state(k, ev)
    typ = k.cpu.mem(ev, 1)[0]
    waiters = k.ke.event_waiters.get(ev, [])
    if waiters:
        if typ == SYNCHRONIZATION_EVENT:
            k.sched.wake(waiters.pop(0), 0)
            k.cpu.mem_write(ev + 4, struct.pack("<i", 0))
            return prev
        while waiters:
            k.sched.wake(waiters.pop(0), 0)
    k.cpu.mem_write(ev + 4, struct.pack("<i", 1))
    return prev


@ke.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)
def KeResetEvent(k):
    ev = k.cpu.arg0()
    prev = signal_state(k, ev)
    k.cpu.mem_write(ev + 4, struct.pack("<i", 0))
    return prev


@ke.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)
def KeClearEvent(k):
    k.cpu.mem_write(k.cpu.arg0() + 4, struct.pack("<i", 0))


@ke.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)
def KeReadStateEvent(k):
    return signal_state(k, k.cpu.arg0())


# ---------------------------------------------------------------- waits (ke/wait.c)

def timeout_at(k, ptr: int):
    """A wait's end on the virtual clock: None (no time-out), relative (negative) or absolute."""
    if not ptr:
        return None
    v = struct.unpack("<q", k.cpu.mem(ptr, 8))[0]
    return k.ke.virtual_time + (-v) if v <= 0 else max(v, k.ke.virtual_time)


@ke.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)
def KeWaitForSingleObject(k):
    obj, reason, _mode, _alertable, tptr = k.cpu.args(5)
    t = k.sched.current
    site = k.ret_site()
    check_freed(k, obj, 0x18, "KeWaitForSingleObject")
    at = timeout_at(k, tptr)
    if t.irql >= DISPATCH_LEVEL and at != k.ke.virtual_time:
        k.violation("wait_at_dispatch", "KeWaitForSingleObject at DISPATCH_LEVEL with a non-zero timeout", site, t)
    typ = k.cpu.mem(obj, 1)[0]
    rname = WAIT_REASONS.get(reason & 0xFFFFFFFF, f"WaitReason{reason}")
    if typ == THREAD_OBJECT:
        return wait_for_thread(k, obj, rname, site, at, "nt!KeWaitForSingleObject")
    if typ in (NOTIFICATION_EVENT, SYNCHRONIZATION_EVENT):
        if signal_state(k, obj) > 0:
            if typ == SYNCHRONIZATION_EVENT:
                k.cpu.mem_write(obj + 4, struct.pack("<i", 0))
            return 0
        if at == k.ke.virtual_time:
            return st.STATUS_TIMEOUT
        k.ke.event_waiters.setdefault(obj, []).append(t)
        return block(k, t, "event", rname, obj, "nt!KeWaitForSingleObject", timeout_at=at)
    k.crash("unsupported_object", f"KeWaitForSingleObject on dispatcher object type {typ} at {obj:#x}", site)
    return BLOCK


def wait_for_thread(k, obj: int, rname: str, site: int, at, function: str):
    """The current thread waits for the thread object `obj` to be signalled (the thread ends): 0 at once
    if it has ended, STATUS_TIMEOUT for a zero time-out, else it blocks. KeWaitForSingleObject on a
    thread object, and ZwWaitForSingleObject on a thread handle (`ob`)."""
    t = k.sched.current
    target = k.ke.by_ethread.get(obj)
    signalled = (target.state == "Terminated") if target else signal_state(k, obj) > 0
    if signalled:
        return 0
    if target is t:
        k.violation("wait_for_self", "thread waits for its own thread object", site, t)
    if at == k.ke.virtual_time:
        return st.STATUS_TIMEOUT
    k.ke.thread_waiters.setdefault(obj, []).append(t)
    k.event(f"{t.name} waits for thread {target.name if target else hex(obj)} to end at {k.sym.fmt(site)}", t)
    return block(k, t, "thread", rname, obj, function, timeout_at=at)


def delay(_k) -> frozenset:
    return DELAY


@ke.export(max_irql=APC_LEVEL, footprint=delay)
def KeDelayExecutionThread(k):
    _mode, _alertable, iptr = k.cpu.args(3)
    t = k.sched.current
    at = timeout_at(k, iptr)
    if at is None or at <= k.ke.virtual_time:
        t.pending_rax = 0
        k.sched.stop(("yield",))
        return BLOCK
    return block(k, t, "delay", "DelayExecution", 0, "nt!KeDelayExecutionThread", timeout_at=at)


# ---------------------------------------------------------------- clock (ke/clock.c)

@ke.export(aliases={"KeQuerySystemTime": None})
def KeQuerySystemTimePrecise(k):
    k.cpu.w64(k.cpu.arg0(), 133450000000000000 + k.ke.virtual_time)
