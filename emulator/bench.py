#!/usr/bin/env python3
"""Benchmark of the emulator (prints numbers; not a timed test).

    python emulator/bench.py [PATH/TestDriver.sys] [--fixed PATH] [--repeat N]

Each run is a fresh child process (`python -m tdemu run ...`); it prints the wall time including
interpreter and emulator start, the child's peak RSS (os.wait4 rusage), and what the run's JSON
says: API calls per second for the deadlock run (default build as is) and the full-loop run
(--allow-recursive-acquire: about 110,000 API calls), the number of schedules for the schedule
explorations (--explore, preemption bound 2) of the default and the fixed build. Median of
--repeat runs (default 3; explorations once).
Targets on the project's 2-core machines: deadlock run < 10 s; full loops < 2 s and < 100 MB;
explorations are measured, not targeted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def one(driver: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH=HERE)
        cmd = [sys.executable, "-m", "tdemu", "run", driver, "--quiet", "--report-dir", d, *extra]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env)
        _pid, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        out = {"wall": wall, "rss_mb": ru.ru_maxrss / 1024, "cpu": ru.ru_utime + ru.ru_stime, "exit": code}
        if "--explore" in extra:
            x = json.load(open(os.path.join(d, "explore.json")))["explore"]
            out.update(schedules=x["schedules"], outcomes=len(x["outcomes"]))
        else:
            rep = json.load(open(os.path.join(d, "report.json")))
            out.update(calls=rep["api_calls_total"], cps=rep["timing"]["api_calls_per_second"],
                       emu=rep["timing"]["emulation_seconds"], outcome=rep["outcome"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("driver", nargs="?", default=os.path.join(REPO, "out", "TestDriver.sys"))
    ap.add_argument("--fixed", default=os.path.join(REPO, "out", "fixed", "TestDriver.sys"))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if not os.path.isfile(a.driver):
        print(f"bench: {a.driver} not found (build it first: bash linux/build.sh)", file=sys.stderr)
        return 2
    if a.repeat < 1:
        print("bench: --repeat needs N >= 1", file=sys.stderr)
        return 2
    print(f"driver: {a.driver}   python {sys.version.split()[0]}   cores: {os.cpu_count()}   repeat: {a.repeat}")
    print(f"{'run':<22} {'outcome':<10} {'exit':>4} {'API calls':>10} {'wall s':>7} {'CPU s':>6} {'emu s':>6} "
          f"{'peak RSS MB':>11} {'calls/s':>9}")
    for label, extra, wall_target, rss_target in (
        ("deadlock (default)", [], 10.0, None),
        ("full loops (switch)", ["--allow-recursive-acquire"], 2.0, 100.0),
    ):
        runs = [one(a.driver, extra) for _ in range(a.repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss_mb", "emu", "cps")}
        r0 = runs[0]
        ok = med["wall"] < wall_target and (rss_target is None or med["rss_mb"] < rss_target)
        print(f"{label:<22} {r0['outcome']:<10} {r0['exit']:>4} {r0['calls']:>10,} {med['wall']:>7.2f} "
              f"{med['cpu']:>6.2f} {med['emu']:>6.2f} {med['rss_mb']:>11.1f} {int(med['cps']):>9,}  "
              f"{'within target' if ok else 'OVER TARGET'} (< {wall_target:.0f} s"
              + (f", < {rss_target:.0f} MB)" if rss_target else ")"))
    print()
    print(f"{'exploration (k=2)':<28} {'exit':>4} {'schedules':>9} {'outcomes':>8} {'wall s':>7} {'CPU s':>6} "
          f"{'peak RSS MB':>11}")
    for label, driver in (("default build --explore", a.driver), ("fixed build --explore", a.fixed)):
        if not os.path.isfile(driver):
            print(f"{label:<28} (skipped: {driver} not built)")
            continue
        r = one(driver, ["--explore"])
        print(f"{label:<28} {r['exit']:>4} {r['schedules']:>9} {r['outcomes']:>8} {r['wall']:>7.2f} {r['cpu']:>6.2f} "
              f"{r['rss_mb']:>11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
