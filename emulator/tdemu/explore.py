"""Schedule exploration (emulator/README.md, "Schedule exploration"): every distinct order of the
threads at the points where it can matter, with at most K preemptions per schedule, as CHESS bounds
it. Each schedule is a fresh run whose choices (a *switch* or a *preempt*) come from a `Chooser`; the
search is depth-first, and runs are grouped by outcome, each with the first schedule that produced it.
"""

from __future__ import annotations

import gc
import hashlib
import time
from dataclasses import dataclass, field


class ScheduleMismatch(Exception):
    """A replayed schedule does not fit this run (another driver, other options)."""


@dataclass
class Decision:
    kind: str  # switch | preempt
    options: list[str]  # thread names, option 0 first (for preempt: the running thread)
    chosen: int
    label: str
    call: int  # API calls made so far in the run


@dataclass
class Chooser:
    prefix: list[int] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def choose(self, kind: str, options: list, label: str, call: int) -> int:
        i = len(self.decisions)
        idx = self.prefix[i] if i < len(self.prefix) else 0
        if idx >= len(options):
            raise ScheduleMismatch(f"choice {i + 1} ({kind} {label}) has {len(options)} option(s), the schedule "
                                   f"asks for option {idx}")
        self.decisions.append(Decision(kind, [t.name for t in options], idx, label, call))
        return idx

    @property
    def preemptions(self) -> int:
        return sum(1 for d in self.decisions if d.kind == "preempt" and d.chosen)


class SchedulePolicy:
    """The choice points of one run, answered by its Chooser: which ready thread runs (`pick`), and
    whether to preempt before a call another ready thread's next call depends on (`choice_point`).
    To know those next calls, a thread made ready is first run ("positioned") up to its next call
    another thread can see (CHESS's assumption: shared data is protected by the synchronization
    calls, which are the choice points)."""

    def __init__(self, k, chooser: Chooser):
        # (imported here: the nt package imports this module; choice_point runs at every call)
        from .nt.api import dependent
        from .nt.kernel import STUB_NAMES
        from .nt.ps import thread_footprint

        self.k = k
        self.chooser = chooser
        self._dependent, self._stub_names, self._thread_footprint = dependent, STUB_NAMES, thread_footprint
        k.sched.on_wake = self.on_wake

    def footprint(self, addr: int, t):
        k = self.k
        if addr in self._stub_names:
            return self._thread_footprint(t)  # the thread ends
        name = k.stub_names.get(addr)
        fn = k.footprints.get(name)
        return fn(k) if fn is not None and name in k.handlers else None

    def choice_point(self, addr: int, t) -> bool:
        """True if the CPU was stopped before the call at addr ran (it runs when t is resumed)."""
        k = self.k
        if t.resume_at_stub:
            t.resume_at_stub = False
            return False
        ready = k.sched.ready
        if not ready and not t.positioning:
            return False  # no other thread to run first, whatever the call
        fp = self.footprint(addr, t)
        if fp is None:
            return False
        what = self._stub_names.get(addr, k.stub_names.get(addr, hex(addr)))
        if t.positioning:
            t.pending = (what, fp)
            t.resume_at_stub = True
            k.sched.stop(("positioned",))
            return True
        if any(r.pending is None for r in ready):
            k.sched.stop(("reposition",))  # learn their next calls first, then come back here
            return True
        deps = [r for r in ready if self._dependent(fp, r.pending[1])]
        if not deps:
            return False
        idx = self.chooser.choose("preempt", [t, *deps], f"{t.name} before {what}", k.total_calls)
        if idx == 0:
            return False
        t.pending = (what, fp)
        t.resume_at_stub = True
        k.sched.stop(("preempt", deps[idx - 1]))
        return True

    def on_wake(self, t, check) -> None:
        w = t.last_wait
        t.pending = (f"retry of {w.function}", frozenset({("obj", w.obj)})) if check is not None else None

    def pick(self):
        """A switch: which of the (two or more) ready threads runs."""
        sched = self.k.sched
        options = list(sched.ready)
        cur = sched.current
        label = f"after {cur.name} {'ended' if cur.state == 'Terminated' else cur.state.lower()}" if cur else "start"
        t = options[self.chooser.choose("switch", options, label, self.k.total_calls)]
        sched.ready.remove(t)
        return t

    def position_ready(self) -> None:
        """Run each ready thread whose next call is not known up to that call."""
        k = self.k
        sched = k.sched
        for r in list(sched.ready):
            if r.pending is not None or k.fatal or r not in sched.ready:
                continue
            idx = sched.ready.index(r)
            sched.ready.remove(r)
            if not k.resume(r):
                continue  # waits again
            r.positioning = True
            stop = k.run_slice(r)
            r.positioning = False
            if stop[0] == "positioned":
                r.state = "Ready"
                sched.ready.insert(idx, r)


def schedule_string(choices: list[int]) -> str:
    """The replayable form: choice indexes, without the trailing run of 0 (the default choice)."""
    c = list(choices)
    while c and c[-1] == 0:
        c.pop()
    return ",".join(map(str, c)) or "0"


def parse_schedule(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError as e:
        raise ValueError(f"--schedule {text!r}: expected choice numbers separated by commas, e.g. 0,1,1") from e
    if any(x < 0 for x in out):
        raise ValueError(f"--schedule {text!r}: choice numbers are >= 0")
    return out


def describe(decisions: list[Decision]) -> list[str]:
    """The choices that differ from the default, in words."""
    out = [f"{d.label}: {d.options[d.chosen]} runs (not {d.options[0]})" if d.kind == "switch" else
           f"preempt {d.label} (call {d.call}): {d.options[d.chosen]} runs first" for d in decisions if d.chosen]
    return out or ["the default schedule: at each choice, the running thread goes on, or the first ready one runs"]


def outcome_of(m, rep: dict, code: int) -> dict:
    """What a schedule ended with, in terms that do not depend on the order of events in it."""
    files = {}
    for d in sorted(m.io.vfs.dirs.values()):
        listing = m.io.vfs.listdir(d)
        digest = hashlib.sha256()
        for f in listing:
            digest.update(f.path.lower().encode() + b"\0" + bytes(f.data) + b"\0")
        files[d] = {"files": len(listing), "bytes": sum(len(f.data) for f in listing),
                    "sha256": digest.hexdigest()[:16]}
    dl = rep["deadlock"]
    out = {"outcome": rep["outcome"], "exit_code": code, "files": files,
           "fatal": {"kind": rep["fatal"]["kind"], "text": rep["fatal"]["text"]} if rep["fatal"] else None,
           "deadlock": None, "findings": sorted({v["rule"] for v in rep["verifier"]}
                                                | ({"irql"} if rep["irql_violations"] else set()))}
    if dl:
        out["deadlock"] = {"waits": sorted(f"{w['thread']}: {w['why']}" for w in dl["waits"]),
                           "fast_mutexes": [{"Count": x["Count"], "Contention": x["Contention"],
                                             "owner": x["owner_thread"]} for x in dl["fast_mutexes"]]}
    return out


def summary_line(o: dict) -> str:
    parts = [o["outcome"]]
    if o["fatal"]:
        parts.append(f"{o['fatal']['kind']}: {o['fatal']['text']}")
    if o["deadlock"]:
        parts.append("; ".join(o["deadlock"]["waits"]))
        parts += [f"FAST_MUTEX Count {x['Count']}, Contention {x['Contention']}" for x in o["deadlock"]["fast_mutexes"]]
    parts.append(", ".join(f"{d}: {v['files']} file(s), {v['bytes']:,} bytes" for d, v in o["files"].items()
                           if not d.endswith(":\\")))
    if o["findings"]:
        parts.append("findings: " + ", ".join(o["findings"]))
    return " | ".join(parts)


def explore(run_one, bound: int, max_schedules: int) -> dict:
    """run_one(chooser) -> (outcome dict) runs one schedule. Returns the exploration's result."""
    t0 = time.perf_counter()
    stack: list[list[int]] = [[]]
    outcomes: dict[str, dict] = {}
    runs = 0
    complete = True
    while stack:
        if runs >= max_schedules:
            complete = False
            break
        prefix = stack.pop()
        chooser = Chooser(prefix)
        outcome = run_one(chooser)
        runs += 1
        gc.collect()  # each run's emulator (unicorn, speakeasy) is let go before the next
        choices = [d.chosen for d in chooser.decisions]
        key = repr(sorted(outcome.items()))
        o = outcomes.get(key)
        if o is None:
            outcomes[key] = o = {"outcome": outcome, "schedules": 0, "schedule": schedule_string(choices),
                                 "preemptions": chooser.preemptions, "choices": describe(chooser.decisions)}
        o["schedules"] += 1
        # new prefixes: every other option at the choice points past this run's prefix. Past the
        # prefix every choice is the default (0), which costs no preemption: the preemptions spent
        # are the prefix's, the same at each of those points.
        used = sum(1 for d in chooser.decisions[:len(prefix)] if d.kind == "preempt" and d.chosen)
        alternatives = []
        for j in range(len(prefix), len(chooser.decisions)):
            d = chooser.decisions[j]
            if used + (1 if d.kind == "preempt" else 0) <= bound:
                alternatives += [choices[:j] + [alt] for alt in range(1, len(d.options))]
        stack.extend(reversed(alternatives))
    return {"preemption_bound": bound, "schedules": runs, "complete": complete, "max_schedules": max_schedules,
            "seconds": round(time.perf_counter() - t0, 2), "outcomes": list(outcomes.values())}


def render(result: dict, driver: str, replay_args: str) -> str:
    L = []
    n = len(result["outcomes"])
    L.append(f"Schedule exploration of {driver} (CHESS-style, at most {result['preemption_bound']} preemption(s) per "
             f"schedule)")
    L.append(f"Schedules run: {result['schedules']} in {result['seconds']} s"
             + ("" if result["complete"] else f" (stopped at --max-schedules {result['max_schedules']}: "
                                               "not every schedule within the bound was run)"))
    L.append(f"Distinct outcomes: {n}" + (": the result depends on the order of the threads" if n > 1 else ""))
    for i, o in enumerate(result["outcomes"], 1):
        L.append("")
        L.append(f"Outcome {i} of {n}, in {o['schedules']} of {result['schedules']} schedule(s): "
                 f"{summary_line(o['outcome'])}")
        L.append(f"  first produced by schedule {o['schedule']} ({o['preemptions']} preemption(s)):")
        L += [f"    - {c}" for c in o["choices"]]
        L.append(f"  replay: python -m tdemu run {driver}{replay_args} --schedule {o['schedule']}")
    return "\n".join(L) + "\n"
