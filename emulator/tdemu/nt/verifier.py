"""Driver Verifier-style checks over the kernel model: rule violations (each with its call site and
count), calls above an API's documented maximum IRQL, and deadlock analysis when no thread can run
while some wait."""

from __future__ import annotations

from .defs import irql_name

BUGCHECK_NAMES = {0x0A: "IRQL_NOT_LESS_OR_EQUAL", 0x20: "KERNEL_APC_PENDING_DURING_EXIT",
                  0x93: "INVALID_KERNEL_HANDLE", 0xC4: "DRIVER_VERIFIER_DETECTED_VIOLATION",
                  0x139: "KERNEL_SECURITY_CHECK_FAILURE", 0xE2: "MANUALLY_INITIATED_CRASH"}


def init(k) -> None:
    k.irql_violations: dict = {}  # (api, irql, site) -> dict
    k.verifier: list[dict] = []
    k._verifier_keys: dict = {}
    k.deadlock: dict | None = None


def violation(k, rule: str, text: str, site: int, t=None) -> None:
    key = (rule, text, site)
    v = k._verifier_keys.get(key)
    if v:
        v["count"] += 1
        return
    v = {"rule": rule, "text": text, "call_site": k.fmt_sym(site) if site else None, "address": site or None,
         "thread": t.name if t else None, "count": 1, "first_call": k.total_calls}
    k._verifier_keys[key] = v
    k.verifier.append(v)


def irql_too_high(k, name: str, t, maxirql: int) -> None:
    site = k.ret_site()
    key = (name, t.irql, site)
    v = k.irql_violations.get(key)
    if v is None:
        k.irql_violations[key] = {
            "api": name, "irql": t.irql, "irql_name": irql_name(t.irql), "max_irql": maxirql,
            "max_irql_name": irql_name(maxirql), "call_site": k.fmt_sym(site), "address": site, "thread": t.name,
            "count": 1, "first_call": k.total_calls}
    else:
        v["count"] += 1


# ---------------------------------------------------------------- deadlock analysis

def owner_thread(k, w):
    if w.kind == "mutex":
        return k.by_ethread.get(k.u64(w.obj + 8))
    if w.kind == "thread":
        return k.by_ethread.get(w.obj)
    return None


def analyse_deadlock(k, waiting: list, brief: bool = False, log: bool = True) -> dict:
    edges = []
    for t in waiting:
        w = t.wait
        owner = owner_thread(k, w)
        edges.append({"thread": t.name, "ethread": t.ethread, "waits_on": w.obj, "kind": w.kind,
                      "reason": w.reason, "owner": owner.name if owner else None,
                      "owner_ethread": owner.ethread if owner else None})
    waits = []
    for t in waiting:
        chain, why = why_forever(k, t)
        waits.append({"thread": t.name, "ethread": t.ethread, "why": why, "chain": chain})
    res = {"call": k.total_calls, "edges": edges, "waits": waits}
    if brief:
        return res
    res["threads"] = [k.thread_info(t) for t in k.sched.threads]
    res["mutexes"] = [k.fast_mutex_info(m) for m in sorted({t.wait.obj for t in waiting if t.wait.kind == "mutex"})]
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
