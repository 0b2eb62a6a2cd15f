"""Command line: python -m tdemu run PATH/TestDriver.sys [options]   (see emulator/README.md)"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from . import ntstatus as st

EXIT_COMPLETED = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_DEADLOCK = 3
EXIT_FAULT = 4
EXIT_ENTRY_FAILED = 5
EXIT_STRICT = 6
EXIT_CODES = {"completed": EXIT_COMPLETED, "deadlock": EXIT_DEADLOCK, "fault": EXIT_FAULT,
              "driver_entry_failed": EXIT_ENTRY_FAILED}


class UsageError(Exception):
    pass


def parse_faults(specs: list[str]):
    from .nt.kernel import NTH_CALL_FAULTS, Faults

    # the faults with a count: KEY=N[:STATUS] sets the Faults fields (count, status)
    counted = {"create-every": ("create_fail_every", "create_fail_status"),
               **{key: (f"{key}_fail_nth", f"{key}_fail_status") for key in NTH_CALL_FAULTS}}
    f = Faults()
    for spec in specs or []:
        key, _, val = spec.partition("=")
        key = key.strip().lower()
        try:
            if key in ("no-temp", "missing-temp"):
                f.missing_dirs.append("C:\\Temp")
            elif key in ("no-temp2", "missing-temp2"):
                f.missing_dirs.append("C:\\Temp2")
            elif key == "missing-dir":
                if not val:
                    raise ValueError("missing-dir needs a path, e.g. missing-dir=C:\\Temp")
                f.missing_dirs.append(val)
            elif key in counted:  # N[:STATUS], N >= 1
                n, _, status = val.partition(":")
                if not n.isdigit() or int(n) <= 0:
                    raise ValueError(f"{key} needs N >= 1")
                setattr(f, counted[key][0], int(n))
                if status:
                    setattr(f, counted[key][1], st.parse(status))
            elif key == "iocreatedevice":
                f.iocreatedevice_status = st.parse(val or "insufficient_resources")
            else:
                raise ValueError(f"unknown fault '{key}'")
        except ValueError as e:
            raise UsageError(f"--fault {spec}: {e}") from e
    return f


def seconds_arg(text: str) -> float:
    """--max-seconds (and winerun.py's --settle, --wait): a finite number of seconds > 0 (float() also takes -5, nan and inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text}: expected a number of seconds > 0")
    return value


def verdict(outcome: str, expect: str | None = None, code: int | None = None) -> int:
    """A run's exit code: with --expect, 0 if the outcome is that one, else 1; otherwise `code`, by default
    the outcome's (EXIT_CODES; 1 for any other outcome)."""
    if expect:
        return EXIT_COMPLETED if outcome == expect else EXIT_INTERNAL
    return EXIT_CODES.get(outcome, EXIT_INTERNAL) if code is None else code


def report_dir_problem(path: str) -> str | None:
    """Why the report files could not be written under `path`, or None. Nothing is created: the
    deepest part of the path that exists must be a directory this process may write in."""
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe}: no permission to write there"
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tdemu",
                                description="Run a Windows kernel driver (.sys) in an emulated kernel and report "
                                            "threads, waits, fast mutexes, files and Verifier-style findings.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="load the driver, run DriverEntry, its system threads and DriverUnload")
    r.add_argument("path", help="the driver, e.g. out/TestDriver.sys (its .map next to it is used for symbols)")
    r.add_argument("--order", choices=["creation", "reverse", "move"], default=None,
                   help="first-run order of the system threads: creation order (default) or reverse "
                        "('move': FileMoveThread first)")
    r.add_argument("--allow-recursive-acquire", action="store_true",
                   help="test switch: ignore a recursive ExAcquireFastMutex by the owner instead of blocking "
                        "(lets the seed's loops run; recorded as a finding)")
    r.add_argument("--unload", choices=["end", "early", "never"], default="end",
                   help="when to call DriverUnload: when no thread can run any more (default), right after "
                        "DriverEntry before the threads run, or never")
    r.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="fault injection, repeatable: no-temp | no-temp2 | missing-dir=C:\\X | "
                        "create-every=N[:STATUS] | iocreatedevice=STATUS | thread=N[:STATUS] | "
                        "reference=N[:STATUS] | zwwait=N[:STATUS] "
                        "(STATUS: access_denied, insufficient_resources, 0xC0000022, ...)")
    r.add_argument("--report-dir", default="report", help="where report.json, report.txt and waitgraph.svg go "
                                                           "(default: ./report)")
    r.add_argument("--no-report", action="store_true", help="write no report files")
    r.add_argument("--dump", default=None, metavar="FILE",
                   help="after the run, write the emulated kernel's state as a full-memory minidump to FILE "
                        "(threads, driver image, kernel objects, pool), and beside it ntoskrnl.exe (tdemu's "
                        "kernel stub) and copies of the driver and its PDB: open it with lldb "
                        "(linux/analyze-dump.sh) or WinDbg")
    r.add_argument("--json", action="store_true", help="print the JSON report instead of the text")
    r.add_argument("--quiet", action="store_true", help="print nothing (exit code and report files only)")
    r.add_argument("--map", default=None, help="linker .map file (default: PATH with .map)")
    r.add_argument("--max-seconds", type=seconds_arg, default=60.0, help="wall-time limit of the emulation (default 60)")
    r.add_argument("--expect", choices=["deadlock", "completed", "fault", "driver_entry_failed"],
                   help="exit 0 if the outcome is this one, 1 otherwise")
    r.add_argument("--strict", action="store_true",
                   help=f"exit {EXIT_STRICT} if the run completed but has Verifier-style findings")
    r.add_argument("--explore", action="store_true",
                   help="run every schedule of the threads within the preemption bound (CHESS-style) and report "
                        "each distinct outcome with a schedule that produces it; exit code: the most severe outcome's")
    r.add_argument("--preemptions", type=int, default=None, metavar="K",
                   help="with --explore: at most K preemptions per schedule (default 2)")
    r.add_argument("--max-schedules", type=int, default=1000, metavar="N",
                   help="with --explore: stop after N schedules (default 1000; the output says so if it stopped)")
    r.add_argument("--schedule", default=None, metavar="CHOICES",
                   help="replay one schedule printed by --explore (choice numbers, e.g. 1,0,1) with the full report")
    sub.add_parser("apis", help="print the routines the kernel model has: component, handler, maximum IRQL")
    return p


def _outcome(m) -> str:
    if m.fatal:
        return "fault"
    if m.deadlock:
        return "deadlock"
    if m.io.driver_entry_status is not None and not st.is_success(m.io.driver_entry_status):
        return "driver_entry_failed"
    return "completed"


def _exit_code(rep: dict, strict: bool) -> int:
    code = EXIT_CODES[rep["outcome"]]
    if code == 0 and strict and (rep["verifier"] or rep["irql_violations"] or rep["handles"]["leaked"]
                                 or rep["use_after_free"] or rep["references_not_released"]):
        return EXIT_STRICT
    return code


# most severe first: the exit code of an exploration is that of its most severe outcome
SEVERITY = (EXIT_FAULT, EXIT_DEADLOCK, EXIT_ENTRY_FAILED, EXIT_STRICT, EXIT_COMPLETED)


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "apis":
        from .nt.kernel import api_table

        sys.stdout.write(api_table())
        return 0
    from .explore import Chooser, ScheduleMismatch, parse_schedule
    from .pecheck import BadInput, load_driver_image

    try:
        faults = parse_faults(args.fault)
        if args.explore and args.schedule is not None:
            raise UsageError("--explore and --schedule: explore runs every schedule; --schedule replays one")
        if args.explore and args.order is not None:
            raise UsageError("--order with --explore: exploration runs the threads in every order")
        if args.schedule is not None and args.order is not None:
            raise UsageError("--order with --schedule: the schedule says which thread runs when")
        if args.preemptions is not None and not args.explore:
            raise UsageError("--preemptions is the bound of --explore")
        if args.preemptions is not None and args.preemptions < 0:
            raise UsageError("--preemptions needs K >= 0")
        if args.max_schedules < 1:
            raise UsageError("--max-schedules needs N >= 1")
        problem = None if args.no_report else report_dir_problem(args.report_dir)
        if problem:
            raise UsageError(f"--report-dir {args.report_dir}: {problem} (or pass --no-report)")
        if args.dump is not None:
            if args.explore:
                raise UsageError("--dump with --explore: a dump is of one run (replay a schedule with --schedule)")
            from .dump import path_problem

            problem = path_problem(args.dump, args.path)
            if problem:
                raise UsageError(f"--dump {args.dump}: {problem}")
        prefix = parse_schedule(args.schedule) if args.schedule is not None else None
        t0 = time.perf_counter()
        image = load_driver_image(args.path)
        if args.map is not None and not os.path.isfile(args.map):
            raise UsageError(f"{args.map}: no such map file")
    except (UsageError, ValueError, BadInput) as e:
        return _error(str(e))

    from . import report as R
    from .nt.kernel import Kernel, Options

    order = "reverse" if args.order in ("reverse", "move") else "creation"
    options = {"order": args.order or "creation", "allow_recursive_acquire": args.allow_recursive_acquire,
               "unload": args.unload, "faults": faults.describe(), "fault_specs": args.fault}

    def run_kernel(chooser, t_start):
        opts = Options(order=order, allow_recursive_acquire=args.allow_recursive_acquire, unload=args.unload,
                       faults=faults, map_path=args.map, max_seconds=args.max_seconds, chooser=chooser)
        m = Kernel(image, opts)
        m.run()
        outcome = _outcome(m)
        rep = R.build(m, outcome, {"wall": time.perf_counter() - t_start, "options": options})
        return m, rep

    if args.explore:
        return _explore(args, run_kernel, R)
    chooser = Chooser(prefix) if prefix is not None else None
    try:
        m, rep = run_kernel(chooser, t0)
    except ScheduleMismatch as e:
        return _error(f"--schedule {args.schedule}: {e}{REPLAY_HINT}")
    except Exception as e:  # noqa: BLE001
        return _internal_error(e)
    if chooser is not None and prefix is not None and len(chooser.decisions) < len(prefix):
        return _error(f"--schedule {args.schedule}: the run made {len(chooser.decisions)} choice(s), the schedule "
                      f"has {len(prefix)}{REPLAY_HINT}")
    if chooser is not None:
        from .explore import describe

        rep["schedule"] = {"replayed": args.schedule, "preemptions": chooser.preemptions,
                           "choices": [vars(d) for d in chooser.decisions], "described": describe(chooser.decisions)}
    if args.dump is not None:
        from . import dump as D

        try:
            rep["dump"] = D.write(m, rep["outcome"], args.dump)
        except (OSError, ValueError) as e:
            return _error(f"--dump {args.dump}: {e}", EXIT_INTERNAL)
    text = R.render_text(rep)
    if "dump" in rep:
        d = rep["dump"]
        text += (f"Dump: {d['path']} ({d['bytes'] / 1e6:.2f} MB: {d['threads']} thread(s), {d['ranges']} memory "
                 f"range(s) of {d['memory_bytes'] / 1e6:.2f} MB; written in {d['seconds']:.3f} s); beside it: "
                 f"{', '.join(os.path.basename(b) for b in d['beside'])}\n")
    if not args.no_report:
        paths = R.write_all(rep, text, args.report_dir)
        text += f"Report: {paths['json']}, {paths['text']}, {paths['svg']}\n"
    _print(args, rep, text)
    return verdict(rep["outcome"], args.expect, _exit_code(rep, args.strict))


REPLAY_HINT = " (replay it with the driver and options of the exploration that printed it)"


def _error(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"tdemu: error: {message}", file=sys.stderr)
    return code


def _print(args, doc: dict, text: str) -> None:
    if not args.quiet:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n" if args.json else text)


def _internal_error(e: Exception) -> int:
    import traceback

    traceback.print_exc()
    print(f"tdemu: internal error: {e}", file=sys.stderr)
    return EXIT_INTERNAL


def _explore(args, run_kernel, R) -> int:
    from . import explore as X

    codes = []
    outcomes = set()

    def run_one(chooser):
        m, rep = run_kernel(chooser, time.perf_counter())
        code = _exit_code(rep, args.strict)
        codes.append(code)
        outcomes.add(rep["outcome"])
        return X.outcome_of(m, rep, code)

    bound = 2 if args.preemptions is None else args.preemptions
    try:
        result = X.explore(run_one, bound, args.max_schedules)
    except Exception as e:  # noqa: BLE001
        return _internal_error(e)
    replay = "".join(f" {a}" for a in (
        ["--allow-recursive-acquire"] if args.allow_recursive_acquire else []) + (
        [f"--unload {args.unload}"] if args.unload != "end" else []) + [f"--fault {f}" for f in args.fault])
    text = X.render(result, args.path, replay)
    result = {"tool": "tdemu", "mode": "explore", "driver": os.path.abspath(args.path), "explore": result}
    if not args.no_report:
        paths = R.write_files(args.report_dir, {"explore.json": result, "explore.txt": text})
        text += f"Report: {', '.join(paths)}\n"
    _print(args, result, text)
    if args.expect:
        return 0 if outcomes == {args.expect} else 1
    return next(c for c in SEVERITY if c in codes)


def main() -> None:
    sys.exit(run())
