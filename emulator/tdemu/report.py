"""Report building: a JSON document for machines, a WinDbg-flavoured text for people,
and an SVG picture of the wait-for graph."""

from __future__ import annotations

import contextlib
import html
import json
import os
import platform
import struct
from collections import Counter
from importlib.metadata import PackageNotFoundError, version

from unicorn import UcError

from . import __version__
from . import ntstatus as st
from .nt.verifier import owner_thread
from .symbols import Unwinder


def hx(v):
    return None if v is None else f"0x{v & 0xFFFFFFFFFFFFFFFF:x}"


def bt(v: int) -> str:
    """WinDbg-style 64-bit address: ffff9709`ac20e040."""
    v &= 0xFFFFFFFFFFFFFFFF
    return f"{v >> 32:08x}`{v & 0xFFFFFFFF:08x}"


def _versions() -> dict:
    out = {"tdemu": __version__, "python": platform.python_version()}
    for package in ("speakeasy-emulator-refined", "unicorn"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


# ------------------------------------------------------------------ what a debugger shows

def stack(k, t) -> list[dict]:
    """Call stack of a waiting thread, unwound with the driver's .pdata."""
    w = t.wait
    if w is None:
        return []
    unwinder = Unwinder(k.cpu.mem, k.base, k.image.runtime_functions)
    frames = [(w.rsp, w.ret_addr, w.function)]
    pc, regs = w.ret_addr, dict(w.regs)
    for _ in range(32):
        res = None
        if k.sym.contains(pc):
            try:
                res = unwinder.unwind(pc, regs, k.cpu.u64)
            except (UcError, struct.error, IndexError, ValueError):
                pass
        frames.append((regs["rsp"], res[0] if res else 0, k.sym.fmt(pc)))
        if res is None:
            break
        pc, regs = res
    return [{"child_sp": hx(sp), "return": hx(ret), "call_site": site} for sp, ret, site in frames]


def thread_info(k, t) -> dict:
    """A thread as `!thread` shows it: its state, and for a waiting thread what it waits on, its owner
    and its stack."""
    d = {"name": t.name, "kind": t.kind, "ethread": hx(t.ethread), "tid": f"{t.tid:x}", "state": t.state,
         "start": hx(t.start), "start_symbol": k.sym.fmt(t.start), "irql": t.irql,
         "kernel_apc_disable": t.apc_disable, "cswitches": t.cswitches, "api_calls": t.calls,
         "exit_status": None if t.exit_status is None else f"0x{t.exit_status:08x}", "exit": t.exit_how or None}
    w = t.wait
    if w:
        owner = owner_thread(k, w)
        d.update({"wait_reason": w.reason, "waiting_on": hx(w.obj), "wait_kind": w.kind,
                  "wait_function": w.function, "call_site": k.sym.fmt(w.ret_addr),
                  "call_site_raw": k.sym.raw(w.ret_addr), "return_address": hx(w.ret_addr),
                  "child_sp": hx(w.rsp), "owner_ethread": hx(owner.ethread) if owner else None,
                  "owner": owner.name if owner else None, "stack": stack(k, t)})
    d["acquires"] = [{"mutex": hx(m), "call_site": k.sym.fmt(s), "return_address": hx(s)} for m, s in t.acquires]
    return d


def fast_mutex(k, m: int) -> dict:
    """`dt nt!_FAST_MUTEX`: its fields, and the names of its owner and of the threads waiting for it."""
    count, _pad, owner, contention, _pad2 = struct.unpack("<iIQII", k.cpu.mem(m, 0x18))
    ev_type, _, ev_size, _, ev_signal = struct.unpack("<BBBBi", k.cpu.mem(m + 0x18, 8))
    return {"address": hx(m), "Count": count, "Owner": hx(owner), "Contention": contention,
            "Event": {"Type": ev_type, "Size": ev_size, "SignalState": ev_signal}, "OldIrql": k.cpu.u32(m + 0x30),
            "owner_thread": k.ke.by_ethread[owner].name if owner in k.ke.by_ethread else None,
            "waiters": [t.name for t in k.ex.mutex_waiters.get(m, [])]}


def build(m, outcome: str, run_info: dict) -> dict:
    img = m.image
    dl = m.deadlock
    mutex_addrs = sorted(({a for t in m.threads for a, _s in t.acquires} | set(m.ex.mutex_waiters)) - m.ke.spin_lock_addrs)
    mutexes_now = []
    for a in mutex_addrs:
        try:
            mutexes_now.append(fast_mutex(m, a))
        except Exception:  # noqa: BLE001 - freed and unreadable
            pass
    rep = {
        "tool": "tdemu", "versions": _versions(),
        "driver": {"path": img.path, "sha256": img.sha256, "module": img.name, "image_base": hx(m.base),
                   "size_of_image": hx(img.size_of_image), "entry_point": m.sym.fmt(m.base + img.entry_rva),
                   "symbols": m.sym.source, "imports": img.imports},
        "options": run_info["options"],
        "outcome": outcome,
        "driver_entry_status": None if m.io.driver_entry_status is None else f"0x{m.io.driver_entry_status:08x}",
        "driver_entry_status_name": None if m.io.driver_entry_status is None else st.name(m.io.driver_entry_status),
        "deadlock": None,
        "fatal": None,
        "threads": [thread_info(m, t) for t in m.threads],
        "fast_mutexes": mutexes_now,
        "files": m.io.vfs.snapshot(),
        "renames": len(m.io.vfs.renames),
        "api_calls": dict(sorted(m.calls.items(), key=lambda kv: (-kv[1], kv[0]))),
        "api_calls_total": m.total_calls,
        "unsupported_api_calls": dict(m.unsupported),
        "irql_violations": [dict(v, address=hx(v["address"])) for v in m.verifier.irql_violations.values()],
        "verifier": [dict(v, address=hx(v["address"])) for v in m.verifier.findings],
        "lock_order": [{"thread": e["thread"], "held": hx(e["held"]), "held_kind": m.verifier.lock_kinds.get(e["held"]),
                        "held_at": m.sym.fmt(e["held_at"]), "acquired": hx(e["acquired"]),
                        "acquired_kind": m.verifier.lock_kinds.get(e["acquired"]), "acquired_at": m.sym.fmt(e["acquired_at"])}
                       for e in m.verifier.lock_edges.values()],
        "handles": {
            "leaked": [{"handle": hx(h.value), "kind": h.kind, "opened_by": h.api, "call_site": m.sym.fmt(h.site),
                        "thread": h.thread, "path": h.path or None} for h in m.ob.handles.values()],
            "invalid_closes": [dict(c, handle=hx(c["handle"])) for c in m.ob.closed_invalid],
        },
        "references_not_released": [{"object": hx(r["object"]), "what": r["what"], "count": r["count"],
                                     "referenced_at": r["sites"]} for r in m.ob.refs.values() if r["count"] > 0],
        "pool_leaks": [{"address": hx(a), "size": s, "tag": tg, "allocated_at": site}
                       for a, (s, tg, site) in m.ex.pool.items()],
        "devices": [dict(d, address=hx(d["address"]), extension=hx(d["extension"])) for d in m.io.devices.values()],
        "use_after_free": [dict(u, address=hx(u["address"]), pc=hx(u["pc"])) for u in m.mm.uaf],
        "unload": {"mode": m.opts.unload, "called": m.io.unload_started,
                   "routine": m.sym.fmt(m.io.unload_routine) if m.io.unload_routine else None,
                   "returned": m.io.unload_done},
        "dbgprint": m.rtl.dbgprint,
        "events": m.events[:500],
        "timing": {"wall_seconds": round(run_info["wall"], 3), "emulation_seconds": round(m.wall, 3),
                   "api_calls_per_second": int(m.total_calls / m.wall) if m.wall > 0 else None},
    }
    if dl:
        rep["deadlock"] = {
            "summary": dl["summary"], "detected_after_api_calls": dl["call"],
            "waits": [dict(w, ethread=hx(w["ethread"])) for w in dl["waits"]],
            "edges": [dict(e, ethread=hx(e["ethread"]), waits_on=hx(e["waits_on"]), owner_ethread=hx(e["owner_ethread"]))
                      for e in dl["edges"]],
            "threads": dl["threads"],
            "fast_mutexes": dl["mutexes"],
        }
        if dl.get("before_fault"):
            rep["deadlock"]["before_fault"] = True
        if "after_unload" in dl:
            rep["deadlock"]["after_unload"] = {"waits": [dict(w, ethread=hx(w["ethread"])) for w in dl["after_unload"]["waits"]]}
    if m.fatal:
        rep["fatal"] = dict(m.fatal, pc=hx(m.fatal["pc"]))
    return rep


# ------------------------------------------------------------------ text

def render_text(rep: dict) -> str:
    L: list[str] = []
    a = L.append
    d = rep["driver"]
    v = rep["versions"]
    a(f"tdemu {v.get('tdemu')} on speakeasy-emulator-refined {v.get('speakeasy-emulator-refined', '?')} "
      f"(unicorn {v.get('unicorn', '?')})")
    a(f"Driver   {d['path']}")
    a(f"         sha256 {d['sha256']}")
    a(f"         loaded at {d['image_base']}, entry {d['entry_point']}, symbols: {d['symbols']}")
    o = rep["options"]
    a(f"Run      thread start order: {o['order']}; unload: {o['unload']}; "
      f"recursive acquire: {'ignored (test switch)' if o['allow_recursive_acquire'] else 'as Windows (blocks)'}")
    if o.get("faults"):
        a("Faults   " + "; ".join(o["faults"]))
    sch = rep.get("schedule")
    if sch:
        a(f"Schedule {sch['replayed']} replayed ({sch['preemptions']} preemption(s)): " + "; ".join(sch["described"]))
    a(f"DriverEntry returned {rep['driver_entry_status_name']} ({rep['driver_entry_status']})"
      if rep["driver_entry_status"] else "DriverEntry did not return")
    a("")
    f = rep["fatal"]
    if f:
        a(f"*** DRIVER FAULT ({f['kind']}): {f['text']}")
        a(f"    in thread {f['thread']} at {f['where']} ({f['pc']})")
        a("")
    if rep["deadlock"]:
        dl = rep["deadlock"]
        if dl.get("before_fault"):
            a(f"*** DEADLOCK (when DriverUnload was called, before the fault above): {dl['summary']}")
        else:
            a(f"*** DEADLOCK: {dl['summary']}")
        a("")
        _wrfastmutex(a, dl["threads"])
        for t in dl["threads"]:
            if t.get("state") == "Waiting":
                _thread_stack(a, t)
        for mx in dl["fast_mutexes"]:
            _dt_fast_mutex(a, mx)
    elif not f:
        a(f"Outcome: DriverEntry failed with {rep['driver_entry_status_name']}: the driver is not loaded "
          "(Windows never calls DriverUnload then)." if rep["outcome"] == "driver_entry_failed" else
          "Outcome: completed: no thread is left waiting; every system thread ran to its end.")
        a("")
    a("0: kd> !thread summary")
    a(f"{'Thread':<18} {'Id':>4} {'State':<11} {'IRQL':<4} {'Calls':>7}  Start / end")
    for t in rep["threads"]:
        end = t.get("exit") or (f"waits in {t.get('wait_function')} at {t.get('call_site')}" if t.get("wait_function") else "")
        a(f"{t['ethread'][2:]:<18} {t['tid']:>4} {t['state']:<11} {t['irql']:<4} {t['api_calls']:>7}  "
          f"{t['start_symbol']}  {end}")
    a("")
    for dname, files in rep["files"].items():
        if dname.endswith(":\\") and not files:
            continue
        total = sum(f["size"] for f in files)
        a(f"C:\\> dir {dname}    {len(files)} File(s)  {total:,} bytes")
        for f in files[:3]:
            a(f"    {f['size']:>8,}  {f['name']}")
        if len(files) > 3:
            a(f"    ... ({len(files) - 3} more)")
    calls = rep["api_calls"]
    a("")
    a(f"API calls: {rep['api_calls_total']:,} in total" + (": " + ", ".join(f"{k} {n:,}" for k, n in calls.items())
                                                         if calls else ""))
    a(f"ZwCreateFile calls: {calls.get('ZwCreateFile', 0)}")
    a("")
    a("Driver Verifier-style checks")
    if rep["irql_violations"]:
        for x in rep["irql_violations"]:
            a(f"  IRQL   {x['api']} called at {x['irql_name']} (max {x['max_irql_name']}) x{x['count']:,} "
              f"from {x['call_site']} [{x['thread']}]")
    else:
        a("  IRQL   no API was called above its maximum IRQL")
    for x in rep["verifier"]:
        cnt = f" x{x['count']}" if x["count"] > 1 else ""
        a(f"  {x['rule']}{cnt}: {x['text']}" + (f" at {x['call_site']}" if x["call_site"] else ""))
    for u in rep["use_after_free"]:
        a(f"  use-after-free: {u['access']} of freed {u['what']} at {u['address']} (+{u['offset']:#x}) by "
          f"{u['where']} [{u['thread']}]")
    h = rep["handles"]
    a(f"  Handles left open (leaks): {len(h['leaked'])}" + "".join(
        f"\n    {x['handle']} {x['kind']} {x['path'] or ''} opened by {x['opened_by']} at {x['call_site']} [{x['thread']}]"
        for x in h["leaked"][:10]))
    a(f"  ZwClose on invalid handles: {len(h['invalid_closes'])}")
    for r in rep["references_not_released"]:
        a(f"  Object reference not released: {r['what']} ({r['object']}) count {r['count']}")
    if rep["pool_leaks"]:
        a(f"  Pool blocks never freed: {len(rep['pool_leaks'])}")
    u = rep["unload"]
    a("")
    if u["called"] and u["routine"] is None:
        a("DriverUnload: the driver set none (DRIVER_OBJECT.DriverUnload is NULL): it cannot be unloaded")
    elif u["called"]:
        a(f"DriverUnload {u['routine']}: " + ("returned" if u["returned"] else "did NOT return" + _why_unload_stays(rep)))
    else:
        a(f"DriverUnload: not called (--unload {u['mode']})")
    if rep["dbgprint"]:
        a("")
        a("DbgPrint output:")
        groups = Counter((p["thread"], p["text"].rstrip()) for p in rep["dbgprint"])  # in the order first printed
        for (thr, txt), n in list(groups.items())[:40]:
            a(f"  [{thr}] {txt}" + (f"   (x{n})" if n > 1 else ""))
        if len(groups) > 40:
            a(f"  ... {len(groups) - 40} more distinct lines in report.json")
    t = rep["timing"]
    a("")
    a(f"Emulated {rep['api_calls_total']:,} API calls in {t['emulation_seconds']} s "
      f"({t['api_calls_per_second'] or 0:,} calls/s); total {t['wall_seconds']} s")
    return "\n".join(L) + "\n"


def _why_unload_stays(rep) -> str:
    ut = next((t for t in rep["threads"] if t["kind"] == "unload"), None)
    f, dl = rep["fatal"], rep["deadlock"]
    if ut is None:
        return ""
    if f and f["thread"] == ut["name"]:
        return ": it faulted (the DRIVER FAULT above)"
    if ut.get("wait_function"):
        where = f": it waits in {ut['wait_function']} at {ut['call_site']}"
        return where + (" (deadlock.after_unload in report.json)" if dl and "after_unload" in dl else "")
    return f": it is {ut['state']}" + (" when the run stopped (the DRIVER FAULT above)" if f else "")


def _wrfastmutex(a, threads):
    a("0: kd> !WrFastMutex")
    a(f"{'Process':<7} {'PID':>3} {'Thread':<16} {'Id':>3} {'CSwitches':>9} {'State':<7} {'Reason':<11} "
      f"{'Waiting On':<31} {'Wait Function'}")
    a("======= === ================ === ========= ======= =========== =============================== " + "=" * 27)
    waiting = [t for t in threads if t.get("wait_reason") == "WrFastMutex"]
    for t in waiting:
        own = t.get("owner_ethread")
        won = f"Owning Thread: {own[2:]}" if own else "Owning Thread: (none)"
        a(f"{'System':<7} {4:>3} {t['ethread'][2:]:<16} {t['tid']:>3} {t['cswitches']:>9} {'Waiting':<7} "
          f"{t['wait_reason']:<11} {won:<31} {t['wait_function']}")
    a(f"Count: {len(waiting)}")
    a("")


def _thread_stack(a, t):
    a(f"0: kd> !thread {t['ethread'][2:]}   ({t['name']}, Id 4.{t['tid']})")
    a(f"    Waiting for {t['wait_reason']} on {t['waiting_on']}, owner {t.get('owner_ethread') or '-'} "
      f"({t.get('owner') or '-'}); IRQL {t['irql']}")
    a(f"    Call site: {t['call_site']}  (return address {t['return_address']}, {t['call_site_raw']})")
    a(" # Child-SP          RetAddr           Call Site")
    for i, f in enumerate(t.get("stack", [])):
        ret = bt(int(f["return"], 16)) if f["return"] and f["return"] != "0x0" else " " * 17
        a(f"{i:02x} {bt(int(f['child_sp'], 16))} {ret} {f['call_site']}")
    a("")


def _dt_fast_mutex(a, mx):
    a(f"0: kd> dt nt!_FAST_MUTEX {mx['address'][2:]}")
    a(f"   +0x000 Count            : 0n{mx['Count']}")
    owner = int(mx["Owner"], 16)
    a(f"   +0x008 Owner            : 0x{bt(owner)} Void" if owner else "   +0x008 Owner            : (null)")
    a(f"   +0x010 Contention       : {mx['Contention']}")
    a("   +0x018 Event            : _KEVENT")
    a(f"   +0x030 OldIrql          : {mx['OldIrql']}")
    a(f"   (owner: {mx['owner_thread']}; waiters: {', '.join(mx['waiters']) or 'none'})")
    a("")


# ------------------------------------------------------------------ SVG

def render_svg(rep: dict) -> str:
    """Wait-for graph: threads (boxes) -> object waited on (ellipse) -> owner thread."""
    dl = rep.get("deadlock")
    threads = (dl or {}).get("threads") or rep["threads"]
    drv_threads = [t for t in threads if t["kind"] in ("driver", "unload")]
    objs = list(dict.fromkeys(t["waiting_on"] for t in drv_threads if t.get("waiting_on")))  # in first-seen order
    mutex_by_addr = {mx["address"]: mx for mx in ((dl or {}).get("fast_mutexes") or rep["fast_mutexes"])}
    W, row = 900, 120
    top = 70 + 18 * len(dl["waits"]) if dl else 80
    H = max(260, top + 10 + row * max(len(drv_threads), 1) + 40)
    tx, ox, tw, th = 40, 560, 300, 64  # thread boxes' x, objects' x, box width, height
    pos = {}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="DejaVu Sans Mono, monospace" font-size="12">',
           "<defs>" + "".join(f'<marker id="{i}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
                              'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
                              f'fill="{c}"/></marker>' for i, c in (("arr", "#333"), ("arrred", "#c0392b"))) + "</defs>",
           '<rect width="100%" height="100%" fill="#ffffff"/>']
    title = "Wait-for graph at deadlock" if dl else "Wait-for graph (no deadlock)"
    out.append(f'<text x="20" y="28" font-size="16" font-weight="bold">{html.escape(title)} — '
               f'{html.escape(rep["driver"]["module"])}.sys</text>')
    if dl:
        for k, w in enumerate(dl["waits"]):
            line = f'{w["thread"]}: {w["why"]}'
            out.append(f'<text x="20" y="{50 + 18 * k}" fill="#c0392b">{html.escape(line[:118])}</text>')
    for i, t in enumerate(drv_threads):
        y = top + i * row
        pos[t["ethread"]] = (tx, y)
        waiting = t["state"] == "Waiting"
        fill = "#fdecea" if waiting else "#eafaf1"
        out.append(f'<rect x="{tx}" y="{y}" width="{tw}" height="{th}" rx="6" fill="{fill}" stroke="#333"/>')
        out.append(f'<text x="{tx + 10}" y="{y + 20}" font-weight="bold">{html.escape(t["name"][:38])}</text>')
        out.append(f'<text x="{tx + 10}" y="{y + 38}">ETHREAD {t["ethread"][2:]}  Id {t["tid"]}</text>')
        state = f'{t["state"]} ({t["wait_reason"]})' if waiting else t["state"]
        out.append(f'<text x="{tx + 10}" y="{y + 55}">{html.escape(state)}</text>')
    for j, o in enumerate(objs):
        y = top + j * row + th // 2
        pos[o] = (ox, y)
        mx = mutex_by_addr.get(o)
        label = "FAST_MUTEX" if mx else "object"
        out.append(f'<ellipse cx="{ox + 140}" cy="{y}" rx="150" ry="40" fill="#fef9e7" stroke="#333"/>')
        out.append(f'<text x="{ox + 140}" y="{y - 12}" text-anchor="middle" font-weight="bold">{label} {o[2:]}</text>')
        if mx:
            out.append(f'<text x="{ox + 140}" y="{y + 6}" text-anchor="middle">Count 0n{mx["Count"]}  '
                       f'Contention {mx["Contention"]}</text>')
            own = mx["Owner"]
            out.append(f'<text x="{ox + 140}" y="{y + 22}" text-anchor="middle">Owner {own[2:] if own != "0x0" else "-"}</text>')
    for t in drv_threads:
        if not t.get("waiting_on"):
            continue
        x, y = pos[t["ethread"]]
        ox2, oy = pos[t["waiting_on"]]
        out.append(f'<line x1="{x + tw}" y1="{y + th // 2 - 8}" x2="{ox2 - 10}" y2="{oy - 6}" stroke="#c0392b" '
                   f'stroke-width="2" marker-end="url(#arrred)"/>')
        out.append(f'<text x="{x + tw + 8}" y="{y + th // 2 - 14}" fill="#c0392b">waits '
                   f'({html.escape(t["wait_reason"])})</text>')
    for o in objs:  # the mutex's owner, else the owner the last thread waiting on the object names
        mx = mutex_by_addr.get(o)
        own = mx["Owner"] if mx and mx["Owner"] != "0x0" else next(
            (t["owner_ethread"] for t in reversed(drv_threads) if t.get("waiting_on") == o and t.get("owner_ethread")),
            None)
        if own and own in pos:
            ox2, oy = pos[o]
            x, y = pos[own]
            out.append(f'<path d="M {ox2 + 140} {oy + 40} C {ox2 + 140} {y + th + 60}, {x + tw + 80} {y + th + 30}, '
                       f'{x + tw} {y + th - 8}" fill="none" stroke="#333" stroke-width="2" stroke-dasharray="6 4" '
                       'marker-end="url(#arr)"/>')
            out.append(f'<text x="{ox2 + 150}" y="{oy + 58}">owned by</text>')
    out.append(f'<text x="20" y="{H - 14}" fill="#666">solid: thread waits for object; dashed: object is owned '
               'by thread. A cycle back to a waiting thread is a deadlock.</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_files(report_dir: str, files: dict) -> list[str]:
    """Writes each file name -> contents (a dict as indented JSON) under report_dir; returns the paths."""
    os.makedirs(report_dir, exist_ok=True)
    paths = []
    for name, contents in files.items():
        paths.append(os.path.join(report_dir, name))
        with open(paths[-1], "w") as f:
            f.write(json.dumps(contents, indent=2) + "\n" if isinstance(contents, dict) else contents)
    return paths


def write_all(rep: dict, text: str, report_dir: str) -> dict:
    rep["files_written"] = {"json": os.path.join(report_dir, "report.json"),
                            "text": os.path.join(report_dir, "report.txt"),
                            "svg": os.path.join(report_dir, "waitgraph.svg")}
    write_files(report_dir, {"report.json": rep, "report.txt": text, "waitgraph.svg": render_svg(rep)})
    return rep["files_written"]
