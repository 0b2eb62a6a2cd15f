"""The seed's WinDbg walk-through, run with lldb-19 on a minidump of TestDriver.sys's host
(`bash linux/analyze-dump.sh FILE.dmp [--symbols DIR]...` runs it; the steps: lldb/README.md).

The inputs are checked in plain Python (minidump.py), then lldb-19 runs once with this file imported:
Python's lldb module only loads inside lldb-19 on Debian 12, hence the two halves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "emulator"))
import minidump as M  # noqa: E402
from tdemu.cli import EXIT_BAD_INPUT, EXIT_COMPLETED, EXIT_DEADLOCK, EXIT_INTERNAL  # noqa: E402

LLDB = "lldb-19"
WINE_PE_DIR = Path("/usr/lib/x86_64-linux-gnu/wine/x86_64-windows")  # Debian's wine64 8.0 (libwine)
DRIVER, PDB = "TestDriver.sys", "TestDriver.pdb"
ENV = "TESTDRIVER_ANALYZE"  # the checked inputs, handed to the lldb half as JSON


class BadInput(ValueError):
    pass


def find_symbols(dump: M.Minidump, dirs: list[Path]) -> dict:
    """The TestDriver.sys module, its CodeView record, and the directories holding the matching
    TestDriver.pdb and TestDriver.sys. BadInput says what is missing or does not match."""
    module = dump.module(DRIVER)
    if module is None:
        names = ", ".join(m.file_name for m in dump.modules) or "none"
        raise BadInput(f"{dump.path}: no {DRIVER} module in the dump (its modules: {names}): "
                       "not a dump of the process that hosts the driver")
    cv = M.module_codeview(dump, module)
    if cv is None:
        raise BadInput(f"{dump.path}: the dump holds no CodeView record of {DRIVER} (no CvRecord and no "
                       "image memory): its PDB cannot be matched")
    pdb_name = Path(cv.pdb_name.replace("\\", "/")).name or PDB
    seen, pdb_dir = [], None
    for candidate in (d / pdb_name for d in dirs if (d / pdb_name).is_file()):
        try:
            guid, age = M.pdb_identity(candidate)
        except M.BadDump as e:
            seen.append(str(e))
            continue
        if (guid, age) == (cv.guid, cv.age):
            pdb_dir = candidate.parent
            break
        seen.append(f"{candidate} is GUID {M.CodeView(guid, age, '').guid_text} age {age}")
    want = f"GUID {cv.guid_text} age {cv.age}"
    if pdb_dir is None:
        where = ", ".join(str(d) for d in dirs)
        raise BadInput(f"no {pdb_name} matching the dump's {DRIVER} ({want}) in {where}"
                       + (f": {'; '.join(seen)}" if seen else "")
                       + f" (put the build's {pdb_name} and {DRIVER} beside the dump, or pass --symbols DIR)")

    def same_image(d: Path) -> bool:
        with contextlib.suppress(M.BadDump):
            return (d / DRIVER).is_file() and M.file_identity(d / DRIVER) == (module.timestamp, module.size)
        return False

    sys_dir = next((d for d in [pdb_dir, *dirs] if same_image(d)), None)
    if sys_dir is None:
        raise BadInput(f"no {DRIVER} with the dump's TimeDateStamp 0x{module.timestamp:x} and SizeOfImage "
                       f"0x{module.size:x} beside {pdb_dir / pdb_name}: lldb needs the image with its PDB")
    return {"module_base": module.base, "codeview": want, "pdb_dir": str(pdb_dir), "sys_dir": str(sys_dir)}


def check(argv: list[str] | None) -> dict:
    """Parses and checks everything before lldb runs; raises BadInput or M.BadDump."""
    p = argparse.ArgumentParser(
        prog="analyze-dump.sh", description="The seed's WinDbg walk-through with lldb-19 on a minidump of the "
        f"process that hosts {DRIVER}, with the {PDB} matching the dump, found beside it or in --symbols DIRs.",
        epilog=f"Exit: 3 the dump shows the deadlock (a thread of {DRIVER} waits in ExAcquireFastMutex), 0 it "
        "does not, 2 bad input (missing file, not a minidump, truncated, no TestDriver.sys module, no matching "
        "PDB: a message, nothing written), 1 other.")
    p.add_argument("dump", help="the minidump (e.g. report/wine/TestDriver.dmp)")
    p.add_argument("--symbols", action="append", default=[], metavar="DIR",
                   help="a directory with TestDriver.sys and TestDriver.pdb (default: the dump's own directory)")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        raise SystemExit(EXIT_BAD_INPUT if e.code else EXIT_COMPLETED) from None
    if bad := [d for d in args.symbols if not Path(d).is_dir()]:
        raise BadInput(f"--symbols {bad[0]}: not a directory")
    dirs = [Path(d).resolve() for d in args.symbols]
    dump = M.read_minidump(args.dump)
    dirs.append(dump.path.resolve().parent)
    info = find_symbols(dump, list(dict.fromkeys(dirs)))
    search = list(dict.fromkeys([info["sys_dir"], info["pdb_dir"], *map(str, dirs)]))
    if WINE_PE_DIR.is_dir():  # Wine's PE modules (symbols of ntoskrnl.exe, ntdll.dll, ...)
        search.append(str(WINE_PE_DIR))
    info.update(dump=str(dump.path.resolve()), search=search, size=dump.path.stat().st_size, threads=len(dump.threads),
                modules=len(dump.modules), full_memory=dump.full_memory)
    return info


def main(argv: list[str] | None = None) -> int:
    try:
        info = check(argv)
    except SystemExit as e:
        return int(e.code)
    except (BadInput, M.BadDump) as e:
        print(f"analyze-dump: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    env = dict(os.environ, **{ENV: json.dumps(info)})
    cmd = [LLDB, "--batch", "--no-lldbinit", "--source-quietly",
           "-o", f"command script import {HERE / 'analyze.py'}", "-o", "seed-walkthrough"]
    try:
        p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        print(f"analyze-dump: error: {LLDB} is not installed (Debian: lldb-19 python3-lldb-19; "
              "source linux/env.sh; ensure_debian_packages dump)", file=sys.stderr)
        return EXIT_INTERNAL
    if p.returncode not in (EXIT_COMPLETED, EXIT_DEADLOCK):
        print(f"analyze-dump: lldb-19 ended with exit {p.returncode} before a verdict", file=sys.stderr)
        return EXIT_INTERNAL
    return p.returncode


# -- inside lldb ---------------------------------------------------------------------------------


def _run(debugger, command: str) -> None:
    """Runs an lldb command and prints it the way lldb's prompt shows it, with its output."""
    import lldb

    ret = lldb.SBCommandReturnObject()
    print(f"(lldb) {command}", flush=True)  # some commands (thread select) also write to lldb's stdout
    debugger.GetCommandInterpreter().HandleCommand(command, ret)
    out = (ret.GetOutput() or "") + (ret.GetError() or "")
    if out.strip():
        print(out.rstrip("\n"), flush=True)
    if not ret.Succeeded():
        raise RuntimeError(f"`{command}` failed: {out.strip()}")


def _step(seed: str, what: str) -> None:
    print(f"\n-- WinDbg `{seed}` -> {what}")


def walkthrough(debugger) -> int:
    import lldb
    import wrfastmutex as W

    info = json.loads(os.environ[ENV])
    t0 = time.monotonic()
    # Every command's output is taken from its return object and printed here, in order; lldb's
    # own asynchronous stop report after `target create` would land in the middle otherwise.
    _run(debugger, "settings set target.exec-search-paths " + " ".join(json.dumps(d) for d in info["search"]))
    _run(debugger, "settings set target.debug-file-search-paths " + json.dumps(info["pdb_dir"]))
    _run(debugger, f"target create --core {json.dumps(info['dump'])}")
    lines, waiters, runtime, dump = W.wrfastmutex_lines(debugger)
    process = debugger.GetSelectedTarget().GetProcess()
    print(f"Dump: {info['dump']} ({info['size'] / 1e6:.1f} MB, "
          f"{'full memory' if info['full_memory'] else 'stacks only'}, {info['threads']} threads, "
          f"{info['modules']} modules); {DRIVER} at 0x{info['module_base']:x}, "
          f"its {PDB} ({info['codeview']}) from {info['pdb_dir']}")

    _step("!WrFastMutex", "the threads waiting in ExAcquireFastMutex")
    _run(debugger, "wrfastmutex")
    if not waiters:
        _step("!thread", f"no thread waits: the threads that are left")
        _run(debugger, "thread list")
        print(f"\nNo deadlock in this dump: no thread of {DRIVER} waits in ExAcquireFastMutex "
              f"(analysed in {time.monotonic() - t0:.1f} s).")
        return 0
    # The seed looks at the owner's stack; where the runtime records no owner, the first waiter's.
    first = waiters[0]
    if runtime.records_owner and first.mutex is not None:
        m = W.read_fast_mutex(process, first.mutex)
        if isinstance(m, W.FastMutex):
            owner_tid = next((t.tid for t in dump.threads if t.teb == m.owner and m.owner), None)
            first = next((w for w in waiters if w.tid == owner_tid), first)
    index = first.thread.GetIndexID()
    _step("!mex.t / !thread", f"thread #{index}'s stack (tid 0x{first.tid:x})")
    _run(debugger, f"thread backtrace {index}")
    _step(".frame /r 0n5", f"its ExAcquireFastMutex frame (#{first.wait_frame}) and registers")
    # `thread select N` would also print the thread's status on lldb's own, buffered stdout, out of
    # order with the rest: the API selects it instead, as that command does.
    process.SetSelectedThread(first.thread)
    print(f"(thread #{index} selected with SBProcess.SetSelectedThread, as `thread select {index}` does)")
    _run(debugger, f"frame select {first.wait_frame}")
    _run(debugger, "register read")
    if first.mutex is None:
        print("\nThe mutex address is not known for this thread: dt nt!_FAST_MUTEX is skipped.")
    else:
        _step(f"dt nt!_FAST_MUTEX {first.mutex:#x}", "the mutex's bytes, decoded with the runtime's meaning")
        if process.ReadMemory(first.mutex, W.FAST_MUTEX_SIZE, lldb.SBError()):
            _run(debugger, f"memory read --size 8 --format x --count 7 {first.mutex:#x}")
        _run(debugger, f"fastmutex {first.mutex:#x}")
    mutexes = sorted({w.mutex for w in waiters if w.mutex is not None})
    print(f"\nDeadlock shown by the dump: {len(waiters)} thread(s) of {DRIVER} wait in ExAcquireFastMutex "
          f"({', '.join(w.caller for w in waiters)})"
          + (f" on {', '.join(f'0x{m:x}' for m in mutexes)}" if mutexes else "")
          + f" (analysed in {time.monotonic() - t0:.1f} s).")
    return 3


def seed_walkthrough(debugger, command, result, _internal_dict):
    code = 1
    try:
        code = walkthrough(debugger)
    except Exception as e:  # noqa: BLE001 - reported, then the exit code says it failed
        import traceback

        traceback.print_exc()
        print(f"analyze-dump: error inside lldb: {e}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # lldb's `quit N` cannot be issued from a command; the verdict is the exit code


def __lldb_init_module(debugger, _internal_dict):
    debugger.HandleCommand(f"command script import {HERE / 'wrfastmutex.py'}")
    debugger.HandleCommand(f"command script add -f {__name__}.seed_walkthrough seed-walkthrough")


if __name__ == "__main__":
    sys.exit(main())
