"""ex: the executive (ReactOS ntoskrnl/ex, and ntoskrnl/mm/ARM3/expool.c for pool): fast mutexes
modelled on the driver's own memory, and pool blocks."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import partial

from .api import Component, arg0_object, everything
from .defs import APC_LEVEL, DISPATCH_LEVEL, SYNCHRONIZATION_EVENT, irql_name
from .ke import KThread, block, set_irql
from .mm import check_freed, free_memory
from .verifier import lock_acquire

ex = Component("ex")

# FAST_MUTEX (x64): Count LONG +0x0, Owner +0x8, Contention ULONG +0x10, Event KEVENT +0x18, OldIrql +0x30
FM_LOCK_BIT, FM_LOCK_WAITER_WOKEN, FM_LOCK_WAITER_INC = 1, 2, 4
FAST_MUTEX_SIZE = 0x38
FM_GATE = 0x1C  # Event.Header.SignalState: the gate waiters sleep on
POOL_BASE, POOL_SIZE = 0xFFFF9709AD000000, 0x200000


@dataclass
class ExState:
    """Who waits for which FAST_MUTEX, the mutexes reported uninitialised, the pool blocks."""
    mutex_waiters: dict[int, list[KThread]] = field(default_factory=dict)
    fm_reported: set[int] = field(default_factory=set)
    pool: dict[int, tuple[int, str, str]] = field(default_factory=dict)  # addr -> size, tag, allocation site
    pool_next: int = POOL_BASE


def init(k) -> ExState:
    k.cpu.map(POOL_BASE, POOL_SIZE, "tdemu.pool")
    return ExState()


# ---------------------------------------------------------------- fast mutex (ex/fmutex.c)

def _count(k, fm: int) -> int:
    return struct.unpack("<i", k.cpu.mem(fm, 4))[0]


def _own(k, t: KThread, fm: int, old_irql: int, unsafe: bool, site: int) -> None:
    k.cpu.w64(fm + 8, t.ethread)
    if not unsafe:
        k.cpu.w32(fm + 0x30, old_irql)
    t.acquires.append((fm, site))
    t.held.append(fm)


def _wait_loop(k, fm: int, woken: bool) -> bool:
    """Windows' contended acquire (the guarded-mutex algorithm FAST_MUTEX uses since Windows 8):
    if the lock bit is set, take it; else count this thread as a waiter and sleep on the gate (the
    KEVENT inside the FAST_MUTEX). A woken thread retries with the waiter-woken bit to clear.
    True: acquired. False: the thread must sleep (the gate is not signalled)."""
    remove, add = (FM_LOCK_BIT | FM_LOCK_WAITER_WOKEN, FM_LOCK_WAITER_WOKEN) if woken else (FM_LOCK_BIT,
                                                                                          FM_LOCK_WAITER_INC)
    while True:
        count = _count(k, fm)
        if count & FM_LOCK_BIT:
            k.cpu.w32(fm, count ^ remove)
            return True
        k.cpu.w32(fm, count + add)
        if k.cpu.u32(fm + FM_GATE) == 0:
            return False
        k.cpu.w32(fm + FM_GATE, 0)  # a signal no waiter took: the wait ends at once, and the thread retries
        remove, add = FM_LOCK_BIT | FM_LOCK_WAITER_WOKEN, FM_LOCK_WAITER_WOKEN


def check_initialized(k, fm: int, count: int, fn: str, site: int, t: KThread) -> None:
    """ExInitializeFastMutex leaves a SynchronizationEvent header (Type 1, Size 6) at +0x18 and a
    Count of 1; a FAST_MUTEX without them was never initialised (zeroed memory, or garbage)."""
    ev_type, _absolute, ev_size = k.cpu.mem(fm + 0x18, 3)
    if (ev_type == SYNCHRONIZATION_EVENT and ev_size == 6 and count >= 0) or fm in k.ex.fm_reported:
        return
    k.ex.fm_reported.add(fm)
    k.violation("fast_mutex_not_initialized",
                f"{fn} on FAST_MUTEX {fm:#x} that ExInitializeFastMutex never initialised (Count {count}, Event "
                f"type {ev_type} size {ev_size}; initialised: a SynchronizationEvent, type 1 size 6)", site, t)


def acquire(k, fm: int, unsafe: bool, fn: str):
    t = k.sched.current
    site = k.ret_site()
    check_freed(k, fm, FAST_MUTEX_SIZE, fn)
    if unsafe and t.irql < APC_LEVEL and t.apc_disable == 0:
        k.violation("fast_mutex_unsafe_apcs_enabled",
                    f"{fn} called with normal kernel APCs enabled (needs KeEnterCriticalRegion or APC_LEVEL)", site, t)
    old_irql = t.irql
    count = _count(k, fm)
    check_initialized(k, fm, count, fn, site, t)
    if count & FM_LOCK_BIT:  # InterlockedBitTestAndReset(&Count, 0)
        lock_acquire(k, t, fm, "FAST_MUTEX", site)
        k.cpu.w32(fm, count & ~FM_LOCK_BIT)
        _own(k, t, fm, old_irql, unsafe, site)
        if not unsafe and t.irql < APC_LEVEL:
            set_irql(k, t, APC_LEVEL)
        return None
    owner = k.cpu.u64(fm + 8)
    if owner == t.ethread:
        if k.opts.allow_recursive_acquire:
            k.violation("recursive_acquire_ignored",
                        f"{fn}: recursive acquire of FAST_MUTEX {fm:#x} ignored (--allow-recursive-acquire)", site, t)
            return None
        k.violation("recursive_fast_mutex_acquire",
                    f"{fn}: thread acquires FAST_MUTEX {fm:#x} it already owns (fast mutexes are not "
                    "recursive: the thread waits for itself forever)", site, t)
        k.event(f"{t.name} calls {fn} on FAST_MUTEX {fm:#x} that it already owns: self-deadlock "
                f"at {k.sym.fmt(site)}", t)
    lock_acquire(k, t, fm, "FAST_MUTEX", site)
    # contended: counted in Contention, and as a waiter in Count; the waiter is at APC_LEVEL
    if not unsafe and t.irql < APC_LEVEL:
        set_irql(k, t, APC_LEVEL)
    k.cpu.w32(fm + 0x10, k.cpu.u32(fm + 0x10) + 1)
    if _wait_loop(k, fm, False):
        _own(k, t, fm, old_irql, unsafe, site)
        return None
    k.ex.mutex_waiters.setdefault(fm, []).append(t)
    k.event(f"{t.name} waits for FAST_MUTEX {fm:#x} (owner {owner:#x}) at {k.sym.fmt(site)}", t)
    return block(k, t, "mutex", "WrFastMutex", fm, "nt!" + fn, old_irql=old_irql, unsafe=unsafe)


def retry(k, t: KThread) -> bool:
    """A woken waiter tries again (it runs before the thread continues); False: it waits again."""
    w = t.last_wait
    assert w is not None
    if _wait_loop(k, w.obj, True):
        _own(k, t, w.obj, w.old_irql, w.unsafe, w.ret_addr)
        return True
    k.ex.mutex_waiters.setdefault(w.obj, []).append(t)
    t.wait, t.state = w, "Waiting"
    return False


def release(k, fm: int, unsafe: bool, fn: str):
    """Windows' release: Count += 1 whatever Count was; if there were waiters and none was being woken,
    one waiter's count becomes the woken bit and the gate is signalled (emulator/README.md)."""
    t = k.sched.current
    site = k.ret_site()
    check_freed(k, fm, FAST_MUTEX_SIZE, fn)
    owner = k.cpu.u64(fm + 8)
    old = _count(k, fm)
    if old & FM_LOCK_BIT:
        k.violation("fast_mutex_release_not_acquired",
                    f"{fn} on FAST_MUTEX {fm:#x} that is not acquired (Count {old}: Windows adds 1 all the same, "
                    "and the mutex is left taken with no owner)", site, t)
    elif owner != t.ethread:
        k.violation("fast_mutex_release_not_owner",
                    f"{fn} on FAST_MUTEX {fm:#x} owned by {owner:#x}, not by the caller", site, t)
    if not unsafe and t.irql != APC_LEVEL:
        k.violation("fast_mutex_release_irql", f"{fn} at {irql_name(t.irql)}: must be called at APC_LEVEL", site, t)
    old_irql = k.cpu.u32(fm + 0x30)
    k.cpu.w64(fm + 8, 0)
    new = old + FM_LOCK_BIT
    if old != 0 and not old & FM_LOCK_WAITER_WOKEN:
        new += FM_LOCK_WAITER_WOKEN - FM_LOCK_WAITER_INC
        waiters = k.ex.mutex_waiters.get(fm)
        if waiters:
            w = waiters.pop(0)
            k.sched.wake(w, 0, partial(retry, k))
            k.event(f"{t.name} releases FAST_MUTEX {fm:#x}, wakes {w.name}", t)
        else:
            k.cpu.w32(fm + FM_GATE, 1)
    k.cpu.w32(fm, new)
    if fm in t.held:
        t.held.remove(fm)
    if not unsafe:
        set_irql(k, t, old_irql)
    return None


def _fast_mutex_routine(k, name: str, op, unsafe: bool):
    return op(k, k.cpu.arg0(), unsafe, name)


# Ex(Acquire|Release)FastMutex and their Unsafe variants, which leave IRQL alone
ex.export_each(_fast_mutex_routine, {"ExAcquireFastMutex": (acquire, False), "ExReleaseFastMutex": (release, False),
                                     "ExAcquireFastMutexUnsafe": (acquire, True),
                                     "ExReleaseFastMutexUnsafe": (release, True)},
               max_irql=APC_LEVEL, footprint=arg0_object)


@ex.export(max_irql=APC_LEVEL, footprint=arg0_object)
def ExTryToAcquireFastMutex(k):
    fm = k.cpu.arg0()
    t = k.sched.current
    site = k.ret_site()
    count = _count(k, fm)
    check_initialized(k, fm, count, "ExTryToAcquireFastMutex", site, t)
    if count & FM_LOCK_BIT:
        k.cpu.w32(fm, count & ~FM_LOCK_BIT)
        _own(k, t, fm, t.irql, False, site)
        if t.irql < APC_LEVEL:
            set_irql(k, t, APC_LEVEL)
        return 1
    return 0


# ---------------------------------------------------------------- pool (mm/ARM3/expool.c)

# Pool Windows does not clear is filled with one byte, as Driver Verifier's special pool does, so runs
# are reproducible: 0xA5 is neither zero nor all ones, a pointer made of it is non-canonical, a length
# huge. The bytes after each block hold it too and are checked when it is freed (`pool_overrun`).
POOL_FILL = 0xA5
POOL_FLAG_UNINITIALIZED = 0x2
POOL_GAP = 16  # at least this many pattern bytes after each block


def _gap(addr: int, size: int) -> tuple[int, int]:
    """[start, end) of the pattern bytes after the block at addr: up to where the next block starts."""
    return addr + size, (addr + size + POOL_GAP + 15) & ~15


def _alloc(k, size: int, tag: int, zero: bool):
    site = k.ret_site()
    size = max(size, 1)
    addr = (k.ex.pool_next + 15) & ~15
    gap_start, gap_end = _gap(addr, size)
    if gap_end > POOL_BASE + POOL_SIZE:
        return 0
    k.ex.pool_next = gap_end
    k.cpu.mem_write(addr, (b"\0" if zero else bytes([POOL_FILL])) * size + bytes([POOL_FILL]) * (gap_end - gap_start))
    tag_s = struct.pack("<I", tag & 0xFFFFFFFF).decode("latin-1")
    k.ex.pool[addr] = (size, tag_s, k.sym.fmt(site))
    return addr


def _allocate(k, name: str, tag: int | None):
    """ExAllocatePool2(Flags, ...), ExAllocatePoolWithTag(PoolType, ...): NumberOfBytes, Tag; ExAllocatePool
    has no tag ('None')."""
    flags, size, tag_arg = k.cpu.args(3)
    return _alloc(k, size, tag_arg if tag is None else tag,
                  name == "ExAllocatePool2" and not flags & POOL_FLAG_UNINITIALIZED)


ex.export_each(_allocate, {"ExAllocatePool2": (None,), "ExAllocatePoolWithTag": (None,),
                           "ExAllocatePool": (0x656E6F4E,)}, max_irql=DISPATCH_LEVEL)


def _free(k, _name: str):
    p = k.cpu.arg0()
    t = k.sched.current
    site = k.ret_site()
    e = k.ex.pool.pop(p, None)
    if e is None:
        k.violation("bad_pool_free", f"free of {p:#x}: not an allocated pool block (double free?)", site, t)
        return None
    size, tag = e[0], e[1]
    gap_start, gap_end = _gap(p, size)
    gap = k.cpu.mem(gap_start, gap_end - gap_start)
    bad = next((i for i, b in enumerate(gap) if b != POOL_FILL), None)
    if bad is not None:
        k.violation("pool_overrun", f"pool block '{tag}' of {size} bytes: written past its end at "
                    f"+{size + bad:#x} (byte {gap[bad]:#04x} where the fill pattern {POOL_FILL:#04x} was; "
                    f"allocated at {e[2]})", site, t)
    free_memory(k, p, p + size, f"pool block '{tag}'")
    return None


ex.export_each(_free, {"ExFreePoolWithTag": (), "ExFreePool": ()}, max_irql=DISPATCH_LEVEL, footprint=everything)
