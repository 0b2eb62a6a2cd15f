"""ps: the process and thread manager (ReactOS ntoskrnl/ps): system threads, their creation and end."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .. import ntstatus as st
from ..machine import BLOCK
from ..machine.cpu import STUB_BASE
from .api import Component
from .defs import PASSIVE_LEVEL, SYSTEM_PROCESS, irql_name
from .ke import KThread, create_thread, thread_ended

ps = Component("ps")

THREAD_RETURN = STUB_BASE + 0  # a start routine returns here: nt!PspSystemThreadStartup
THREADS = frozenset({("threads",)})


def thread_footprint(t) -> frozenset:
    """A thread's end signals its thread object."""
    return frozenset({("obj", t.ethread)})


@dataclass
class PsState:
    """The system threads the driver created that have not been made ready yet."""
    pending_driver_threads: list[KThread] = field(default_factory=list)


# ---------------------------------------------------------------- creation (ps/thread.c)

def thread_list(_k) -> frozenset:
    return THREADS


@ps.export(max_irql=PASSIVE_LEVEL, footprint=thread_list)
def PsCreateSystemThread(k):
    ph, access, _oa, _hproc, cid, start, ctx = k.cpu.args(7)
    cur = k.sched.current
    failed = k.injected_fault("thread")
    if failed is not None:
        return failed
    name = k.sym.fmt(start).split("!", 1)[-1]
    if name.endswith("+0x0"):
        name = name[:-4]
    t = create_thread(k, name, start, "driver", THREAD_RETURN, [ctx])
    h = k.new_handle("thread", t, "PsCreateSystemThread", k.ret_site(), access)
    k.cpu.w64(ph, h)
    if cid:
        k.cpu.mem_write(cid, struct.pack("<QQ", 4, t.tid))
    k.event(f"PsCreateSystemThread -> {t.name} (ETHREAD {t.ethread:#x}, Id {t.tid:x}), handle {h:#x}", cur)
    if k.io.driver_entry_status is None and cur.kind == "loader":
        k.ps.pending_driver_threads.append(t)
        if k.policy is not None:  # exploring: it may run before DriverEntry returns, as on Windows
            k.sched.make_ready(t)
    else:
        k.sched.make_ready(t)
    return 0


# ---------------------------------------------------------------- end (ps/kill.c)

def current_thread(k) -> frozenset:
    return thread_footprint(k.sched.current)


@ps.export(max_irql=PASSIVE_LEVEL, footprint=current_thread)
def PsTerminateSystemThread(k):
    status = k.cpu.arg0() & 0xFFFFFFFF
    t = k.sched.current
    if t.kind != "driver":
        k.violation("terminate_non_system_thread", "PsTerminateSystemThread from a thread the driver did not create",
                    k.ret_site(), t)
    k.sched.stop(("exit", status, f"PsTerminateSystemThread({st.name(status)})"))
    return BLOCK


def exit_thread(k, t: KThread, status: int, how: str) -> None:
    """The thread ends (PspExitThread): checks of what it still holds, then its object is signalled."""
    t.state = "Terminated"
    t.exit_status = status
    t.exit_how = how
    t.ctx = None
    if t.kind == "driver":
        for m in t.held:
            k.violation("thread_exit_holding_fast_mutex", f"{t.name} ended while still owning FAST_MUTEX {m:#x}", 0, t)
        if t.irql != PASSIVE_LEVEL:
            k.violation("thread_exit_irql", f"{t.name} ended at {irql_name(t.irql)} (must return at PASSIVE_LEVEL)",
                        0, t)
    thread_ended(k, t)
    k.event(f"{t.name} ended ({how})", t)
    disabled = t.apc_disable + t.special_apc_disable
    if t.kind == "driver" and disabled:
        # PspExitThread: Thread->Tcb.CombinedApcDisable != 0
        regions = ", ".join(f"{n} {what} region(s)" for n, what in ((t.apc_disable, "critical"),
                                                                    (t.special_apc_disable, "guarded")) if n)
        k.bugcheck(0x20, (0, disabled, t.irql, 0), f"{t.name} ended inside {regions} "
                   "(KeEnterCriticalRegion/KeEnterGuardedRegion without the matching Leave)", pc=THREAD_RETURN)


# ---------------------------------------------------------------- queries (ps/thread.c, ps/process.c)

@ps.export()
def PsGetCurrentThread(k):
    return k.sched.current.ethread


@ps.export()
def PsGetCurrentThreadId(k):
    return k.sched.current.tid


@ps.export()
def PsGetCurrentProcess(_k):
    return SYSTEM_PROCESS


@ps.export()
def PsGetCurrentProcessId(_k):
    return 4
