"""Driver Verifier-style checks over the kernel model: rule violations (each with its call site and
count), calls above an API's documented maximum IRQL, and deadlock analysis when no thread can run
while some wait."""

from __future__ import annotations

from dataclasses import dataclass, field

from .defs import irql_name

BUGCHECK_NAMES = {0x0A: "IRQL_NOT_LESS_OR_EQUAL", 0x20: "KERNEL_APC_PENDING_DURING_EXIT",
                  0x93: "INVALID_KERNEL_HANDLE", 0xC4: "DRIVER_VERIFIER_DETECTED_VIOLATION",
                  0x139: "KERNEL_SECURITY_CHECK_FAILURE", 0xE2: "MANUALLY_INITIATED_CRASH"}


@dataclass
class VerifierState:
    """What the checks found: rule violations, calls above an API's maximum IRQL, the lock-order graph."""
    findings: list[dict] = field(default_factory=list)
    keys: dict = field(default_factory=dict)  # (rule, text, site) -> its entry in findings
    irql_violations: dict = field(default_factory=dict)  # (api, irql, site) -> dict
    lock_edges: dict = field(default_factory=dict)  # (held, acquired) -> first time a thread acquired `acquired` holding `held`
    lock_kinds: dict[int, str] = field(default_factory=dict)
    lock_pairs_reported: set = field(default_factory=set)


def violation(k, rule: str, text: str, site: int, t=None) -> None:
    key = (rule, text, site)
    v = k.verifier.keys.get(key)
    if v:
        v["count"] += 1
        return
    v = {"rule": rule, "text": text, "call_site": k.sym.fmt(site) if site else None, "address": site or None,
         "thread": t.name if t else None, "count": 1, "first_call": k.total_calls}
    k.verifier.keys[key] = v
    k.verifier.findings.append(v)


def irql_too_high(k, name: str, t, maxirql: int) -> None:
    site = k.ret_site()
    key = (name, t.irql, site)
    v = k.verifier.irql_violations.get(key)
    if v is None:
        k.verifier.irql_violations[key] = {
            "api": name, "irql": t.irql, "irql_name": irql_name(t.irql), "max_irql": maxirql,
            "max_irql_name": irql_name(maxirql), "call_site": k.sym.fmt(site), "address": site, "thread": t.name,
            "count": 1, "first_call": k.total_calls}
    else:
        v["count"] += 1


# ---------------------------------------------------------------- deadlock analysis

def owner_thread(k, w):
    if w.kind == "mutex":
        return k.ke.by_ethread.get(k.cpu.u64(w.obj + 8))
    if w.kind == "thread":
        return k.ke.by_ethread.get(w.obj)
    if w.kind == "spinlock":
        return k.ke.spinlocks.get(w.obj)
    return None


def analyse_deadlock(k, waiting: list, brief: bool = False, log: bool = True) -> dict:
    edges, waits = [], []
    for t in waiting:
        w = t.wait
        owner = owner_thread(k, w)
        edges.append({"thread": t.name, "ethread": t.ethread, "waits_on": w.obj, "kind": w.kind,
                      "reason": w.reason, "owner": owner.name if owner else None,
                      "owner_ethread": owner.ethread if owner else None})
        chain, why = why_forever(k, t)
        waits.append({"thread": t.name, "ethread": t.ethread, "why": why, "chain": chain})
    res = {"call": k.total_calls, "edges": edges, "waits": waits}
    if brief:
        return res
    from ..report import fast_mutex, thread_info  # the threads and mutexes as they are now, for the report

    res["threads"] = [thread_info(k, t) for t in k.sched.threads]
    res["mutexes"] = [fast_mutex(k, m) for m in sorted({t.wait.obj for t in waiting if t.wait.kind == "mutex"})]
    res["summary"] = (f"{len(waiting)} thread(s) wait forever: " +
                      "; ".join(f"{w['thread']}: {w['why']}" for w in waits))
    if log:
        k.event("deadlock detected: " + res["summary"])
    return res


def why_forever(k, t) -> tuple[list[str], str]:
    owner = owner_thread(k, t.wait)
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
        nxt = owner_thread(k, o.wait)
        if nxt is o:
            return names + [o.name], (f"the owner {o.name} is blocked for ever: it waits for itself "
                                      "(recursive acquire)")
        if nxt is None:
            return names, f"the owner {o.name} waits for an object nothing will signal"
        o = nxt


# ---------------------------------------------------------------- lock order (Driver Verifier's deadlock detection)

def lock_acquire(k, t, lock: int, kind: str, site: int) -> None:
    """Thread t is about to acquire (or wait for) `lock` while holding t.held: each held lock gets an
    edge held -> lock. A new edge that closes a cycle (lock -> ... -> held already exists, from any
    thread) is a potential deadlock, reported even if this run never deadlocks, as Driver Verifier's
    deadlock detection does (bug check 0xC4, 0x1001: lock hierarchy violation)."""
    k.verifier.lock_kinds[lock] = kind
    for held in t.held:
        if held == lock or (held, lock) in k.verifier.lock_edges:
            continue
        held_site = next((s for m, s in reversed(t.acquires) if m == held), 0)
        k.verifier.lock_edges[(held, lock)] = {"thread": t.name, "held": held, "held_at": held_site, "acquired": lock,
                                      "acquired_at": site}
        path = _lock_path(k, lock, held)
        if path is None:
            continue
        pair = frozenset((held, lock))
        if pair in k.verifier.lock_pairs_reported:
            continue
        k.verifier.lock_pairs_reported.add(pair)
        chain = [k.verifier.lock_edges[(a, b)] for a, b in zip(path, path[1:])]
        other = "; ".join(f"{e['thread']} acquired {_lock_name(k, e['acquired'])} at {k.sym.fmt(e['acquired_at'])} "
                          f"holding {_lock_name(k, e['held'])} (taken at {k.sym.fmt(e['held_at'])})" for e in chain)
        violation(k, "lock_order_violation",
                  f"potential deadlock: {t.name} acquires {_lock_name(k, lock)} holding {_lock_name(k, held)} "
                  f"(taken at {k.sym.fmt(held_site)}), the opposite order of: {other}", site, t)


def _lock_name(k, lock: int) -> str:
    return f"{k.verifier.lock_kinds.get(lock, 'lock')} {lock:#x}"


def _lock_path(k, start: int, goal: int) -> list[int] | None:
    """A path start -> ... -> goal in the lock-order graph, or None."""
    succ: dict[int, list[int]] = {}
    for a, b in k.verifier.lock_edges:
        succ.setdefault(a, []).append(b)
    seen = {start}
    stack = [[start]]
    while stack:
        path = stack.pop()
        for nxt in succ.get(path[-1], []):
            if nxt == goal:
                return path + [nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append(path + [nxt])
    return None
