"""Threads on the one CPU, each with its own stack and saved registers: the scheduler switches them
in and out and runs each until a callback stops the CPU. The kernel model says when a thread blocks,
is woken or ends, and which ready thread runs next; the scheduler knows nothing of what a thread
waits for."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from unicorn import UcError

from .cpu import Cpu

BLOCK = object()  # a handler's return value: the calling thread blocked (RAX is set when it is woken)


@dataclass
class Wait:
    kind: str  # mutex | thread | event | delay | spinlock
    reason: str  # WrFastMutex | Executive | ...
    obj: int
    function: str  # nt!ExAcquireFastMutex
    ret_addr: int
    rsp: int
    regs: dict
    old_irql: int = 0
    unsafe: bool = False
    timeout_at: int | None = None


@dataclass(eq=False)
class Thread:
    name: str
    start: int
    kind: str = "driver"  # what the kernel model makes of it: driver | loader | unload
    stack_top: int = 0
    ret: int = 0  # the address its start routine returns to
    args: list = field(default_factory=list)
    state: str = "Initialized"  # Initialized, Ready, Running, Waiting, Terminated, Crashed
    ctx: object = None
    started: bool = False
    irql: int = 0  # CR8: part of the thread's context
    wait: Wait | None = None
    last_wait: Wait | None = None
    pending_rax: int | None = None
    resume_check: Callable | None = None  # run when a woken thread is switched in; False: it waits again
    cswitches: int = 0
    calls: int = 0
    # schedule exploration: a thread stopped at its next operation (before the call runs)
    pending: tuple | None = None  # (what, footprint) of that operation; None: not known yet
    positioning: bool = False  # run only up to its next operation that another thread can see
    resume_at_stub: bool = False  # it stopped at a call: the call runs, without a new choice, when resumed


class Scheduler:
    def __init__(self, cpu: Cpu, max_seconds: float, t_start: float):
        self.cpu = cpu
        self.max_seconds = max_seconds
        self.t_start = t_start
        self.threads: list[Thread] = []
        self.ready: deque[Thread] = deque()
        self.current: Thread | None = None
        self.stopped: tuple | None = None  # why the CPU stopped: ("block",) ("yield",) ("exit", status, how) ("fatal",)
        self.on_switch_in: Callable | None = None  # callback(thread) after its context is loaded
        self.on_wake: Callable | None = None  # callback(thread, check) after a thread is woken

    def add(self, t: Thread) -> Thread:
        self.threads.append(t)
        return t

    def make_ready(self, t: Thread) -> None:
        t.state = "Ready"
        self.ready.append(t)

    def next_ready(self) -> Thread | None:
        return self.ready.popleft() if self.ready else None

    def stop(self, reason: tuple) -> None:
        self.stopped = reason
        self.cpu.stop()

    def block(self, t: Thread, wait: Wait):
        t.wait = wait
        t.state = "Waiting"
        self.stop(("block",))
        return BLOCK

    def wake(self, t: Thread, status: int, check=None) -> None:
        t.last_wait = t.wait
        t.wait = None
        t.pending_rax = status
        t.resume_check = check
        self.make_ready(t)
        if self.on_wake is not None:
            self.on_wake(t, check)

    def _switch_in(self, t: Thread) -> int:
        cpu = self.cpu
        if not t.started:
            cpu.start_context(t.start, t.stack_top - 0x100, t.ret, t.args)  # 16-byte aligned, home space above
            t.started = True
        else:
            cpu.restore(t.ctx)
            if t.pending_rax is not None:
                cpu.set_rax(t.pending_rax)
                t.pending_rax = None
        cpu.set_cr8(t.irql)
        if self.on_switch_in is not None:
            self.on_switch_in(t)
        t.state = "Running"
        t.cswitches += 1
        self.current = t
        return cpu.pc()

    def run_slice(self, t: Thread) -> tuple:
        """Run t until it stops. Returns why: ("block",), ("yield",), ("exit", status, how), ("fatal",),
        ("cpu_exception", message, pc), ("timeout", pc, running), or, when it stopped at a call that has
        not run yet (schedule exploration), ("preempt", next_thread), ("positioned",), ("reposition",)."""
        pc = self._switch_in(t)
        self.stopped = None
        remaining = self.max_seconds - (time.perf_counter() - self.t_start)
        if remaining <= 0:
            return ("timeout", pc, False)
        try:
            self.cpu.run(pc, remaining)
        except UcError as e:
            t.state = "Crashed"
            if self.stopped and self.stopped[0] == "fatal":
                return self.stopped
            return ("cpu_exception", f"{e}", self.cpu.pc())
        stop = self.stopped
        if stop is None:
            t.state = "Running"
            return ("timeout", self.cpu.pc(), True)
        kind = stop[0]
        if kind in ("block", "yield"):
            # Complete the call frame: the thread resumes at the return address (RAX set on wake).
            self.cpu.pop_return()
            t.ctx = self.cpu.save()
            if kind == "yield":
                self.make_ready(t)
        elif kind in ("preempt", "positioned", "reposition"):
            t.ctx = self.cpu.save()  # rip stays on the call: it runs when the thread is resumed
        elif kind == "fatal":
            t.state = "Crashed"
        return stop
