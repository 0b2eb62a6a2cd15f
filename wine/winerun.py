"""Runs the real TestDriver.sys under Wine, installed and started by sc.exe.

Wine (Debian 12's wine64 8.0) hosts kernel drivers in winedevice.exe with its
own ntoskrnl.exe: the driver runs natively, on real threads, against a real
file system (the prefix's drive_c). This module makes a throwaway Wine prefix,
creates C:\\Temp and C:\\Temp2, copies the .sys and its .pdb to
system32\\drivers, and drives the service with sc.exe; it reads the files the
driver wrote and the driver threads' stacks (winedbg).

    python3 wine/winerun.py run PATH.sys [--settle S] [--wait S] [--expect OUTCOME] [--dump DIR]
    python3 wine/winerun.py bench PATH.sys [--runs N]

`run` prints each step and exits with tdemu's codes (imported from tdemu.cli):
3 deadlock, 0 completed (the 1000 files moved to C:\\Temp2, C:\\Temp empty),
1 anything else or an error, 2 bad usage; 130 when interrupted; with
`--expect OUTCOME`, as `tdemu run --expect`: 0 if the outcome is that one, else 1.
`--dump DIR`: before `sc stop`, a full-memory minidump of the winedevice.exe
that hosts the driver (out/fulldump.exe, built by linux/build.sh, run in the
prefix) goes to DIR/TestDriver.dmp with TestDriver.sys and TestDriver.pdb
beside it: what `bash linux/analyze-dump.sh DIR/TestDriver.dmp` needs.
`bench` prints the prefix creation time,
the time to RUNNING and the time to the 1000th file of N runs.

Facts this relies on (measured with wine64 8.0~repack-4):
- `wineboot -i` returns before its wineserver and services.exe have shut
  down; `wineserver -w` waits for that, else sc fails with 1060/1055/1053.
- Wine stops its services when no user process is left: a keeper process
  (cmd.exe waiting on a pipe) lives for the whole session. It is the first
  process of the wineserver, so services.exe and winedevice.exe inherit its
  stderr: their debug output (WINEDEBUG=+loaddll,+pid) lands in the prefix's
  log, each line led by the process and thread ids (`0124:0130:trace:...`):
  the "Loaded ...TestDriver.sys" line names the winedevice.exe that hosts it.
- winedbg exits 0 whatever happened: a failed `attach` is only a line of its
  output ("Can't attach process ..."), after which `print` and `bt` do nothing.
  Its listings are checked for what was asked, never trusted to be complete.
- Wine's sc.exe prints nothing when create or delete succeed; its failures
  go to stderr as `err:sc:... failed ... CODE` (with exit code 1).
- Every wine command runs with a time limit; the only processes ended are
  this prefix's (`wineserver -k`) and the ones started here.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulator"))
# tdemu's exit codes and argument checks: one meaning for both runtimes
from tdemu.cli import EXIT_BAD_INPUT as EXIT_USAGE  # noqa: E402
from tdemu.cli import EXIT_COMPLETED, EXIT_DEADLOCK  # noqa: E402
from tdemu.cli import EXIT_INTERNAL as EXIT_UNEXPECTED  # noqa: E402
from tdemu.cli import UsageError, report_dir_problem  # noqa: E402
from tdemu.cli import _seconds as seconds_arg  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FULLDUMP = REPO / "out" / "fulldump.exe"  # wine/fulldump.c, built by linux/build.sh
DUMP_NAME = "TestDriver.dmp"
WINE64 = Path("/usr/lib/wine/wine64")
WINESERVER = Path("/usr/lib/wine/wineserver")
SERVICE = "TestDrv"
DRIVER_FILE = "TestDriver.sys"
DRIVER_MODULE = "testdriver.sys"
BIN_PATH = "C:\\windows\\system32\\drivers\\TestDriver.sys"
FILE_COUNT = 1000
FILE_DATA = b"Hello, World!\r\n" * 100  # what FileCreationThread writes to each file
EXPECTED_FILES = {f"NewFile_{i}.txt" for i in range(FILE_COUNT)}

EXIT_INTERRUPTED = 130

# sc.exe errors of a service manager that is not ready yet (the window after
# wineboot): the service database is locked, does not know the service yet, or
# the service did not answer.
SC_NOT_READY = (1053, 1055, 1060)
SC_STATES = {1: "STOPPED", 2: "START_PENDING", 3: "STOP_PENDING", 4: "RUNNING"}
ERROR_NAMES = {
    1053: "the service did not respond in time",
    1055: "the service database is locked",
    1056: "an instance of the service is already running",
    1060: "the service does not exist",
    1062: "the service has not been started",
    1072: "the service is marked for deletion",
    1073: "the service already exists",
}


class WineError(RuntimeError):
    """Wine did not do what a step needs (timed out, failed, not installed)."""


@dataclass
class Result:
    """One finished wine command."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error(self) -> int | None:
        """The Win32 error sc.exe reported (`err:sc:... failed ... 1060`), if any."""
        m = re.search(r"err:sc:\S+ .*?failed.*?(\d+)\s*$", self.stderr, re.MULTILINE)
        return int(m.group(1)) if m else None

    def describe_error(self) -> str:
        code = self.error
        if code is None:
            return f"exit {self.returncode}"
        return f"error {code} ({ERROR_NAMES.get(code, 'see winerror.h')})"


@dataclass
class Frame:
    """One line of a winedbg backtrace."""

    index: int
    address: int
    function: str | None
    offset: int | None
    module: str
    source: str | None

    @property
    def name(self) -> str:
        if self.function is None:
            return f"{self.module}+0x{self.offset or 0:x}"
        return self.function if self.offset is None else f"{self.function}+0x{self.offset:x}"

    def line(self) -> str:
        src = f" [{self.source}]" if self.source else ""
        return f"{self.index:>3} 0x{self.address:012x} {self.name}{src} in {self.module}"


_FRAME_RE = re.compile(r"^\s*(?:=>)?(\d+)\s+0x([0-9a-fA-F]+)\s+(.*)$")
_NOSYM_RE = re.compile(r"^in (\S+) \(\+0x([0-9a-fA-F]+)\)")
_SYM_RE = re.compile(r"^(?P<func>[^\s(]+?)(?:\+0x(?P<off>[0-9a-fA-F]+))?\(.*\)"
                     r"(?: \[(?P<src>[^\]]*)\])? in (?P<mod>\S+) \(")


def parse_frame(text: str) -> Frame | None:
    m = _FRAME_RE.match(text)
    if not m:
        return None
    index, address, rest = int(m.group(1)), int(m.group(2), 16), m.group(3)
    n = _NOSYM_RE.match(rest)
    if n:
        return Frame(index, address, None, int(n.group(2), 16), n.group(1), None)
    s = _SYM_RE.match(rest)
    if not s:
        return None
    src = s.group("src")
    if src:  # keep file:line, not the build machine's directories
        src = re.split(r"[\\/]", src)[-1]
    off = s.group("off")
    return Frame(index, address, s.group("func"), int(off, 16) if off else None, s.group("mod"), src)


@dataclass
class Stack:
    """A thread's backtrace, as winedbg printed it."""

    pid: int
    tid: int
    frames: list[Frame]

    def driver_frame(self) -> Frame | None:
        """The driver's outermost frame at the first driver return address.

        winedbg lists inlined functions as frames of their own at the same
        address (`acquire+0x8`, then `TestDriver::file_creation_thread+0x6a`);
        the last one at that address is the real function.
        """
        first = next((f for f in self.frames if f.module.lower().startswith(Path(DRIVER_MODULE).stem)), None)
        if first is None:
            return None
        same = [f for f in self.frames if f.address == first.address and f.module == first.module]
        return same[-1]

    def called_routine(self) -> Frame | None:
        """The routine the driver frame called (the outermost frame just above it)."""
        drv = self.driver_frame()
        if drv is None:
            return None
        above = [f for f in self.frames if f.index < drv.index and f.address != drv.address]
        if not above:
            return None
        addr = above[-1].address
        return [f for f in above if f.address == addr][-1]

    @property
    def thread_function(self) -> str | None:
        drv = self.driver_frame()
        return drv.function if drv else None


@dataclass
class Files:
    """What C:\\Temp and C:\\Temp2 hold: file name -> size."""

    temp: dict[str, int]
    temp2: dict[str, int]

    def moved_ok(self) -> bool:
        return not self.temp and set(self.temp2) == EXPECTED_FILES and all(
            size == len(FILE_DATA) for size in self.temp2.values())

    def summary(self) -> str:
        return f"C:\\Temp: {describe(self.temp)}; C:\\Temp2: {describe(self.temp2)}"


def describe(listing: dict[str, int]) -> str:
    if not listing:
        return "0 files"
    sizes = sorted(set(listing.values()))
    size = f"{sizes[0]} bytes each" if len(sizes) == 1 else f"{min(sizes)}..{max(sizes)} bytes"
    total = sum(listing.values())
    names = sorted(listing, key=lambda n: (len(n), n))
    return f"{len(listing)} files ({names[0]}..{names[-1]}, {size}, {total:,} bytes)"


def _env(prefix: Path, home: Path, debug: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "WINEPREFIX", "WINEDEBUG", "WINEDLLOVERRIDES",
                        "WINEARCH", "WINESERVER", "WINELOADER") and not k.startswith("XDG_")}
    env.update(
        WINEPREFIX=str(prefix),
        WINEARCH="win64",
        WINEDEBUG=debug,
        # No Mono or Gecko installer, no menu entries or file associations.
        WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d",
        # wineboot links the prefix's user folders to $HOME's: keep them inside.
        HOME=str(home),
    )
    return env


class Prefix:
    """A throwaway Wine prefix with its wineserver and a keeper process.

    Use as a context manager (or call close()): the prefix's processes are
    ended with `wineserver -k` and its directory is deleted, also on errors
    and interrupts. `parent`: where the temporary directory goes (default: TMPDIR).
    """

    def __init__(self, parent: str | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="testdriver-wine-", dir=parent))
        self.path = self.root / "prefix"
        self.home = self.root / "home"
        self.home.mkdir()
        self.log_path = self.root / "services.log"
        self.keeper: subprocess.Popen | None = None
        self.timings: dict[str, float] = {}
        self.closed = False

    # -- lifetime ---------------------------------------------------------

    def __enter__(self) -> Prefix:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def env(self, debug: str = "fixme-all") -> dict[str, str]:
        return _env(self.path, self.home, debug)

    def create(self) -> None:
        """wineboot -i, wait for its wineserver to end, C:\\Temp and C:\\Temp2, keeper, services."""
        if not WINE64.exists():
            raise WineError(f"{WINE64} is missing: install Debian's wine64 and wine "
                            "(bash linux/demo.sh --wine does it)")
        t0 = time.monotonic()
        boot = self.run(["wineboot", "-i"], timeout=180, debug="-all")
        if boot.returncode != 0:
            raise WineError(f"wineboot -i failed (exit {boot.returncode}): {boot.stderr.strip()[-500:]}")
        self._wineserver("-w", timeout=120)
        self.timings["prefix"] = time.monotonic() - t0
        for folder in ("Temp", "Temp2"):
            (self.path / "drive_c" / folder).mkdir()
        self._start_keeper()
        t1 = time.monotonic()
        self._wait_for_services(timeout=120)
        self.timings["services"] = time.monotonic() - t1

    def _start_keeper(self) -> None:
        # cmd.exe's `pause` reads its stdin, a pipe held open here: the keeper
        # lives until close() (no timer, no network).
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child
        try:
            self.keeper = subprocess.Popen(
                [str(WINE64), "cmd", "/c", "echo keeper-ready& pause >nul"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=self.env("fixme-all,+loaddll,+pid"), cwd=self.root)
        finally:
            log.close()
        assert self.keeper.stdout is not None
        ready, _, _ = select.select([self.keeper.stdout], [], [], 60)
        line = self.keeper.stdout.readline() if ready else b""
        if b"keeper-ready" not in line:
            raise WineError("the keeper process (cmd.exe) did not start within 60 s")

    def _wait_for_services(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            r = self.sc("query", "PlugPlay", timeout=30)
            if state_of(r.stdout) == 4:
                return
            if time.monotonic() > deadline:
                raise WineError(f"services.exe did not answer `sc query PlugPlay` within {timeout:.0f} s "
                                f"({r.describe_error()})")
            time.sleep(0.2)

    def _wineserver(self, flag: str, timeout: float) -> int:
        try:
            return subprocess.run([str(WINESERVER), flag], env=self.env("-all"), timeout=timeout,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL).returncode
        except subprocess.TimeoutExpired as e:
            raise WineError(f"wineserver {flag} did not return within {timeout:.0f} s") from e

    def close(self) -> list[str]:
        """Ends this prefix's processes and deletes it; returns what was done."""
        if self.closed:
            return []
        self.closed = True
        done = []
        if self.path.exists():
            procs = []
            if self.keeper is not None and self.keeper.poll() is None:
                try:
                    procs = [name for _, name in self.processes()]
                except WineError:
                    procs = []
            try:
                code = self._wineserver("-k", timeout=30)
                self._wineserver("-w", timeout=30)
                what = f"ended {len(procs)} processes ({', '.join(sorted(set(procs)))})" if procs else \
                    "no process was left"
                done.append(f"wineserver -k: {what}; the prefix's wineserver has exited (exit {code})")
            except WineError as e:
                done.append(f"wineserver: {e}")
        if self.keeper is not None:
            if self.keeper.poll() is None:
                self.keeper.kill()
            try:
                self.keeper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                done.append(f"the keeper process {self.keeper.pid} did not exit")
            for pipe in (self.keeper.stdin, self.keeper.stdout):
                if pipe is not None:
                    pipe.close()
        size = _du(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        done.append(f"removed {self.root} ({size / 1e6:.0f} MB)" if not self.root.exists()
                    else f"could not remove all of {self.root}")
        return done

    # -- commands ---------------------------------------------------------

    def run(self, args: list[str], timeout: float, debug: str = "fixme-all") -> Result:
        """Runs `wine64 ARGS` in this prefix with a time limit."""
        t0 = time.monotonic()
        try:
            p = subprocess.run([str(WINE64), *args], env=self.env(debug), timeout=timeout, cwd=self.root,
                               stdin=subprocess.DEVNULL, capture_output=True)
        except subprocess.TimeoutExpired as e:
            raise WineError(f"`{' '.join(args)}` did not return within {timeout:.0f} s") from e
        out = p.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
        err = p.stderr.decode("utf-8", "replace").replace("\r\n", "\n")
        return Result(args, p.returncode, out, err, time.monotonic() - t0)

    def sc(self, *args: str, timeout: float = 30, retry: tuple[int, ...] = (), retry_for: float = 30) -> Result:
        """sc.exe ARGS; retried while it fails with one of `retry` (services not ready)."""
        deadline = time.monotonic() + retry_for
        while True:
            r = self.run(["sc", *args], timeout=timeout)
            if r.returncode == 0 or r.error not in retry or time.monotonic() > deadline:
                return r
            time.sleep(0.3)

    def create_service(self) -> Result:
        """sc create of the kernel service for system32\\drivers\\TestDriver.sys (retried while
        the service manager is not ready)."""
        return self.sc("create", SERVICE, "type=", "kernel", "binPath=", BIN_PATH, retry=SC_NOT_READY)

    def stop_service(self) -> tuple[Result, bool]:
        """sc stop; returns its result and whether the log shows TestDriver.sys unloaded during it."""
        mark = len(self.log())
        r = self.sc("stop", SERVICE, timeout=90)
        return r, any("Unloaded module" in line for line in self.driver_log(mark))

    def query(self, service: str = SERVICE) -> tuple[int | None, Result]:
        r = self.sc("query", service)
        return state_of(r.stdout), r

    def processes(self) -> list[tuple[int, str]]:
        """(pid, executable) of every Windows process of the prefix (winedbg `info process`)."""
        r = self.run(["winedbg", "--command", "info process"], timeout=60, debug="-all")
        procs, listed = [], 0
        for line in r.stdout.splitlines():
            m = re.match(r"^([ =])([0-9a-f]{8})\s+\d+\s+[\\_ ]*'([^']+)'", line)
            if not m:
                continue
            listed += 1
            if m.group(1) == "=":  # winedbg itself, and the start.exe that launched it
                if procs and procs[-1][1] == "start.exe":
                    procs.pop()
                continue
            procs.append((int(m.group(2), 16), m.group(3)))
        if r.returncode != 0 or not listed:  # it lists itself at least: none means it failed
            raise WineError(f"winedbg `info process` listed no process (exit {r.returncode}): "
                            f"{(r.stdout + r.stderr).strip()[-500:]}")
        return procs

    def threads(self) -> dict[int, tuple[str, list[int]]]:
        """pid -> (executable, thread ids) (winedbg `info thread`)."""
        r = self.run(["winedbg", "--command", "info thread"], timeout=60, debug="-all")
        procs: dict[int, tuple[str, list[int]]] = {}
        current = None
        for line in r.stdout.splitlines():
            p = re.match(r"^([0-9a-f]{8}) (?:\(D\) )?(\S+)", line)
            t = re.match(r"^\t([0-9a-f]{8})\s", line)
            if p:
                current = int(p.group(1), 16)
                procs[current] = (p.group(2).split("\\")[-1], [])
            elif t and current is not None:
                procs[current][1].append(int(t.group(1), 16))
        if r.returncode != 0 or not procs:
            raise WineError(f"winedbg `info thread` listed no process (exit {r.returncode}): "
                            f"{(r.stdout + r.stderr).strip()[-500:]}")
        return procs

    def backtraces(self, pid: int, tids: list[int]) -> list[Stack]:
        """Each thread's stack: winedbg attaches to `pid`, runs `bt` per thread, detaches."""
        script = self.root / "winedbg-commands.txt"
        lines = [f"attach 0x{pid:x}"]
        for tid in tids:
            lines += [f"print 0x{tid:x}", f"bt 0x{tid:x}"]
        lines += ["detach", "quit"]
        script.write_text("\n".join(lines) + "\n")
        r = self.run(["winedbg", "--file", f"Z:{script}".replace("/", "\\")], timeout=60, debug="-all")
        stacks, tid, frames = [], None, []
        wanted = set(tids)
        for line in r.stdout.splitlines():
            m = re.match(r"^0x([0-9a-f]+)$", line.strip())  # `print 0xTID` before each `bt`
            if m and int(m.group(1), 16) in wanted:
                if tid is not None:
                    stacks.append(Stack(pid, tid, frames))
                tid, frames = int(m.group(1), 16), []
                continue
            f = parse_frame(line)
            if f is not None and tid is not None:
                frames.append(f)
        if tid is not None:
            stacks.append(Stack(pid, tid, frames))
        failed = next((line for line in r.stdout.splitlines() if line.startswith("Can't attach")), None)
        if r.returncode != 0 or failed or [s.tid for s in stacks] != list(tids) or (
                tids and not any(s.frames for s in stacks)):
            raise WineError(f"winedbg did not walk the threads of pid 0x{pid:x} (exit {r.returncode}, "
                            f"{sum(1 for s in stacks if s.frames)} of {len(tids)} stacks): "
                            f"{failed or (r.stdout + r.stderr).strip()[-500:]}")
        return stacks

    def winedevice_stacks(self) -> dict[int, list[Stack]]:
        """pid -> the stacks of all its threads, for every winedevice.exe; a WineError if winedbg
        did not list the processes or walk their threads."""
        return {pid: self.backtraces(pid, tids) for pid, (exe, tids) in sorted(self.threads().items())
                if exe.lower() == "winedevice.exe" and tids}

    def write_dump(self, pid: int, dump_dir: Path, sys_path: Path) -> tuple[Path, float]:
        """A full-memory minidump of process `pid` (the winedevice.exe hosting TestDriver.sys) by
        out/fulldump.exe run in this prefix, moved to dump_dir/TestDriver.dmp with the .sys and .pdb
        beside it. Returns the dump's path and the seconds fulldump.exe took."""
        if not FULLDUMP.is_file():
            raise WineError(f"{FULLDUMP} is missing: bash linux/build.sh builds it (mingw-w64)")
        shutil.copyfile(FULLDUMP, self.root / "fulldump.exe")
        inside = self.root / "drive_c" / DUMP_NAME
        inside.unlink(missing_ok=True)
        tmp_name = "C:\\" + DUMP_NAME
        r = self.run([str(self.root / "fulldump.exe"), f"0x{pid:x}", tmp_name, DRIVER_FILE], timeout=600)
        produced = self.path / "drive_c" / DUMP_NAME
        if r.returncode != 0 or not produced.is_file():
            raise WineError(f"fulldump.exe 0x{pid:x} failed (exit {r.returncode}): "
                            f"{(r.stdout + r.stderr).strip()[-500:]}")
        dump_dir.mkdir(parents=True, exist_ok=True)
        dest = dump_dir / DUMP_NAME
        shutil.move(str(produced), dest)
        for src in (sys_path, sys_path.with_suffix(".pdb")):
            if src.is_file():
                shutil.copyfile(src, dump_dir / (Path(DRIVER_FILE).stem + src.suffix))
        return dest, r.seconds

    def driver_host_pid(self, since: int = 0) -> int | None:
        """The winedevice.exe that loaded TestDriver.sys after log line `since` (from the log, no winedbg)."""
        return host_pid_of(self.driver_log(since))

    # -- the driver's world -----------------------------------------------

    def install(self, sys_path: Path) -> list[str]:
        """Copies the .sys (and the .pdb next to it) to system32\\drivers; returns the names copied."""
        drivers = self.path / "drive_c" / "windows" / "system32" / "drivers"
        copied = []
        for src in (sys_path, sys_path.with_suffix(".pdb")):
            if src.is_file():
                dest = drivers / (Path(DRIVER_FILE).stem + src.suffix)
                # A new file, not an overwrite: a winedevice.exe may still map the old one.
                dest.unlink(missing_ok=True)
                shutil.copyfile(src, dest)
                copied.append(Path(DRIVER_FILE).stem + src.suffix)
        return copied

    def files(self) -> Files:
        def listing(folder: str) -> dict[str, int]:
            try:
                with os.scandir(self.path / "drive_c" / folder) as it:
                    return {e.name: e.stat().st_size for e in it}
            except FileNotFoundError:
                return {}
        return Files(listing("Temp"), listing("Temp2"))

    def file_data_ok(self) -> bool:
        """Every file in C:\\Temp2 holds exactly what FileCreationThread writes."""
        folder = self.path / "drive_c" / "Temp2"
        return all((folder / name).read_bytes() == FILE_DATA for name in os.listdir(folder))

    def clear_folders(self) -> None:
        for folder in ("Temp", "Temp2"):
            d = self.path / "drive_c" / folder
            for name in os.listdir(d):
                (d / name).unlink()

    def log(self) -> list[str]:
        """The lines services.exe and winedevice.exe wrote (WINEDEBUG=+loaddll and errors)."""
        try:
            return self.log_path.read_text("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []

    def driver_log(self, since: int = 0) -> list[str]:
        """The log lines about TestDriver.sys from line `since` on (loaded, unloaded)."""
        return [line for line in self.log()[since:] if DRIVER_MODULE in line.lower()]


def host_pid_of(driver_lines: list[str]) -> int | None:
    """The process that loaded TestDriver.sys, from its "Loaded" line among `driver_lines` (driver_log)."""
    for line in driver_lines:
        m = re.match(r"^([0-9a-f]{4,8}):[0-9a-f]{4,8}:trace:loaddll:.*Loaded L\"", line)
        if m:
            return int(m.group(1), 16)
    return None


def state_of(sc_output: str) -> int | None:
    m = re.search(r"STATE\s*:\s*(\d+)", sc_output)
    return int(m.group(1)) if m else None


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


# -- one run of the driver ----------------------------------------------------


@dataclass
class Run:
    """What one start of the service showed."""

    start: Result
    running_seconds: float  # sc start launched -> sc start returned RUNNING
    files: Files
    stacks: list[Stack] = field(default_factory=list)
    last_file_seconds: float | None = None  # sc start launched -> 1000 files in C:\Temp2, C:\Temp empty
    state: int | None = None
    host_pid: int | None = None  # the winedevice.exe that sc start made for the driver (from the log)
    host_stacks: list[Stack] = field(default_factory=list)  # all its threads, as winedbg walked them
    driver_lines: list[str] = field(default_factory=list)  # the log's TestDriver.sys lines since before sc start

    @property
    def blocked(self) -> list[Stack]:
        return [s for s in self.stacks if (c := s.called_routine()) is not None
                and c.function is not None and c.function.startswith("ExAcquireFastMutex")]

    @property
    def outcome(self) -> str:
        if self.blocked and not self.files.temp and not self.files.temp2:
            return "deadlock"
        if self.files.moved_ok() and not self.stacks:
            return "completed"
        return "unexpected"


def start_service(prefix: Prefix) -> tuple[Result, float]:
    t0 = time.monotonic()
    r = prefix.sc("start", SERVICE, retry=SC_NOT_READY)
    return r, time.monotonic() - t0


def wait_for_files(prefix: Prefix, started: float, limit: float, quiet: float) -> tuple[Files, float | None]:
    """Polls C:\\Temp and C:\\Temp2 until the 1000 files are in C:\\Temp2 and C:\\Temp is
    empty, until nothing changed for `quiet` seconds, or for `limit` seconds.
    Returns the last listing and, if it completed, the seconds since `started`."""
    deadline = time.monotonic() + limit
    last, changed = None, time.monotonic()
    while True:
        files = prefix.files()
        now = time.monotonic()
        if files.moved_ok():
            return files, now - started
        key = (len(files.temp), len(files.temp2), sum(files.temp.values()), sum(files.temp2.values()))
        if key != last:
            last, changed = key, now
        if now - changed > quiet or now > deadline:
            return files, None
        time.sleep(0.01)


def run_once(prefix: Prefix, settle: float, wait: float, stacks: bool = True) -> Run:
    """Starts the service (created already), waits, then looks at files, state and (with `stacks`)
    threads: every winedevice.exe thread is walked, those with a TestDriver.sys frame are `stacks`."""
    mark = len(prefix.log())
    t0 = time.monotonic()
    start, running = start_service(prefix)
    if state_of(start.stdout) != 4:
        return Run(start, running, prefix.files(), state=state_of(start.stdout),
                   driver_lines=prefix.driver_log(mark))
    files, last = wait_for_files(prefix, t0, wait, quiet=settle)
    lines = prefix.driver_log(mark)
    run = Run(start, running, files, last_file_seconds=last, host_pid=host_pid_of(lines), driver_lines=lines)
    run.state = prefix.query()[0]
    if stacks:
        walked = prefix.winedevice_stacks()
        run.host_stacks = walked.get(run.host_pid, [])
        run.stacks = [s for pid_stacks in walked.values() for s in pid_stacks if s.driver_frame() is not None]
    return run


# -- the demo (`run`) ------------------------------------------------------------


def _show(text: str = "") -> None:
    print(text, flush=True)


def _show_sc(r: Result, note: str = "") -> None:
    _show(f"C:\\> sc.exe {' '.join(r.args[1:])}")
    out = r.stdout.strip("\n")
    if out:
        _show("\n".join("    " + line for line in out.splitlines()))
    err = [line for line in r.stderr.splitlines() if ":err:sc:" in line]
    for line in err:
        _show("    " + line)
    status = "exit 0" if r.returncode == 0 else r.describe_error()
    _show(f"    ({status}, {r.seconds:.2f} s{'; ' + note if note else ''})")


def _wine_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "wine64"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        return f"wine64 {out}" if out else "wine64"
    except (OSError, subprocess.TimeoutExpired):
        return "wine64"


def _show_stacks(run: Run) -> None:
    if not run.stacks:
        host = (f", of the {len(run.host_stacks)} threads of its winedevice.exe (pid 0x{run.host_pid:x})"
                if run.host_pid else "")
        _show(f"winedbg: no thread of TestDriver.sys is left{host}: the driver's threads have ended")
        return
    _show(f"winedbg: {len(run.stacks)} thread(s) in TestDriver.sys "
          f"(winedevice.exe, pid 0x{run.stacks[0].pid:x}), symbols from TestDriver.pdb:")
    for s in run.stacks:
        drv, called = s.driver_frame(), s.called_routine()
        assert drv is not None
        waits = f"waits in {called.name}" if called is not None else "running"
        _show(f"  thread 0x{s.tid:04x}: {drv.function}, {waits}, return address 0x{drv.address:x}")
        for f in s.frames:
            if f.module.lower().startswith(("kernel32", "ntdll")) and f.index > drv.index:
                break
            _show("    " + f.line())


def _describe_deadlock(run: Run) -> str:
    names = {s.thread_function: s for s in run.blocked}
    creation = next((s for n, s in names.items() if n and "file_creation_thread" in n), None)
    move = next((s for n, s in names.items() if n and "file_move_thread" in n), None)
    parts = []
    if creation:
        parts.append(f"FileCreationThread waits in ExAcquireFastMutex for the mutex it already holds "
                     f"({creation.driver_frame().name})")
    if move:
        parts.append(f"FileMoveThread waits behind it ({move.driver_frame().name})")
    elif creation:
        parts.append("FileMoveThread took the mutex first, found none of the files and ended")
    return "; ".join(parts) or f"{len(run.blocked)} thread(s) wait in ExAcquireFastMutex"


def demo(sys_path: Path, settle: float, wait: float, dump_dir: Path | None = None) -> int:
    _show(f"== Wine ({_wine_version()}): {sys_path} loaded by sc.exe into winedevice.exe")
    with Prefix() as prefix:
        try:
            return _demo(prefix, sys_path, settle, wait, dump_dir)
        finally:
            _show()
            _show("Teardown:")
            for line in prefix.close():
                _show(f"  {line}")


def _demo(prefix: Prefix, sys_path: Path, settle: float, wait: float, dump_dir: Path | None) -> int:
    _show(f"Making a throwaway prefix in {prefix.path} (wineboot -i; about 10 s) ...")
    prefix.create()
    _show(f"  prefix ready in {prefix.timings['prefix']:.1f} s ({_du(prefix.path) / 1e6:.0f} MB); "
          f"services.exe answered after {prefix.timings['services']:.1f} s more")
    copied = prefix.install(sys_path)
    _show("  made C:\\Temp and C:\\Temp2 (empty); copied " + " and ".join(copied)
          + " to C:\\windows\\system32\\drivers")
    if len(copied) == 1:
        _show("  (no TestDriver.pdb next to the .sys: stacks will show offsets, not names)")
    _show()

    create = prefix.create_service()
    _show_sc(create, "Wine's sc.exe prints nothing on success" if create.returncode == 0 else "")
    if create.returncode != 0:
        _show("Outcome: sc create failed (exit 1)")
        return EXIT_UNEXPECTED
    run = run_once(prefix, settle, wait)
    _show_sc(run.start, f"RUNNING {run.running_seconds:.2f} s after sc start was launched"
             if state_of(run.start.stdout) == 4 else "")
    for line in run.driver_lines[:1]:
        _show(f"    winedevice.exe: {line[line.find('Loaded'):]}")
    if state_of(run.start.stdout) != 4:
        _show("Outcome: the service did not reach RUNNING (exit 1)")
        return EXIT_UNEXPECTED
    _show()

    if run.last_file_seconds is not None:
        _show(f"The 1000th file was in C:\\Temp2 {run.last_file_seconds:.2f} s after sc start was launched.")
    else:
        _show(f"The folders did not change for {settle:g} s after sc start (checked every 10 ms).")
    _show(run.files.summary())
    if run.files.temp2 and run.last_file_seconds is not None:
        _show(f"  every file holds {len(FILE_DATA)} bytes of 'Hello, World!\\r\\n' x 100: "
              f"{'yes' if prefix.file_data_ok() else 'NO'}")
    _show(f"sc query {SERVICE}: STATE {run.state} {SC_STATES.get(run.state or 0, '?')}")
    _show_stacks(run)
    _show()

    outcome = run.outcome
    if outcome == "deadlock":
        _show(f"*** DEADLOCK under Wine: {_describe_deadlock(run)}. C:\\Temp and C:\\Temp2 stay empty.")
    elif outcome == "completed":
        _show("*** COMPLETED under Wine: NewFile_0.txt..NewFile_999.txt (1500 bytes each) in C:\\Temp2, "
              "C:\\Temp empty, both threads ended.")
    else:
        _show("*** UNEXPECTED under Wine: neither the deadlock nor the 1000 files moved to C:\\Temp2 "
              f"({run.files.summary()}; {len(run.stacks)} driver thread(s) left).")
    _show()

    if dump_dir is not None:
        if run.host_pid is None:
            raise WineError("no 'Loaded ...TestDriver.sys' line names the winedevice.exe to dump")
        _show(f"Writing a full-memory dump of winedevice.exe (pid 0x{run.host_pid:x}) with fulldump.exe "
              "(MiniDumpWriteDump: full memory, handles, thread info) ...")
        dest, seconds = prefix.write_dump(run.host_pid, dump_dir, sys_path)
        _show(f"Dump: {dest} ({dest.stat().st_size / 1e6:.1f} MB) written in {seconds:.1f} s, "
              f"with {', '.join(sorted(p.name for p in dump_dir.iterdir() if p.suffix != '.dmp'))} beside it")
        _show()

    pids = {s.pid for s in run.stacks} | ({run.host_pid} if run.host_pid else set())
    stop, unloaded = prefix.stop_service()
    _show_sc(stop)
    gone = wait_processes_gone(prefix, pids, 10) if pids else True
    _show("  " + describe_stop(stop, unloaded, gone, pids, run))
    delete = prefix.sc("delete", SERVICE)
    after, q = prefix.query()
    _show_sc(delete, f"then sc query {SERVICE}: "
             + (q.describe_error() if after is None else f"STATE {after}"))
    code = {"deadlock": EXIT_DEADLOCK, "completed": EXIT_COMPLETED}.get(outcome, EXIT_UNEXPECTED)
    _show()
    _show(f"Outcome: {outcome} (exit {code})")
    return code


def describe_stop(stop: Result, unloaded: bool, gone: bool, pids: set[int], run: Run) -> str:
    """What `sc stop` did, in words, from its state, the log and the processes left (Prefix.stop_service)."""
    state = state_of(stop.stdout)
    parts = [f"STATE {state} {SC_STATES.get(state or 0, '?')} after {stop.seconds:.2f} s"]
    parts.append("Wine ran DriverUnload, then unloaded TestDriver.sys (log: \"Unloaded module ...TestDriver.sys\")"
                 if unloaded else "no unload of TestDriver.sys was logged")
    if pids:
        where = f"winedevice.exe (pid {', '.join(f'0x{p:x}' for p in sorted(pids))})"
        ending = f", ending the {len(run.stacks)} thread(s) still in the driver with it" if run.stacks else ""
        parts.append(f"{where} then exited (its only driver was gone){ending}" if gone
                     else f"{where} is still running")
    return "; ".join(parts)


def wait_processes_gone(prefix: Prefix, pids: set[int], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while True:
        alive = {pid for pid, _ in prefix.processes()} & pids
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


# -- bench -----------------------------------------------------------------------


def bench(sys_path: Path, runs: int) -> int:
    with Prefix() as prefix:
        prefix.create()
        prefix.install(sys_path)
        create = prefix.create_service()
        if create.returncode != 0:
            print(f"wine: sc create failed: {create.describe_error()}", file=sys.stderr)
            return EXIT_UNEXPECTED
        running, last, outcomes = [], [], {}
        for _ in range(runs):
            prefix.clear_folders()
            r = run_once(prefix, settle=3, wait=30, stacks=False)
            running.append(r.running_seconds)
            if r.last_file_seconds is not None:
                last.append(r.last_file_seconds)
            outcome = "completed" if r.files.moved_ok() else (
                "files left in C:\\Temp" if r.files.temp and not r.files.temp2 else "other")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            prefix.sc("stop", SERVICE, timeout=90)
        print(f"wine: prefix creation {prefix.timings['prefix']:.1f} s (wineboot -i), "
              f"services ready {prefix.timings['services']:.1f} s later")
        print(f"wine: time to RUNNING (sc start) median {statistics.median(running):.2f} s, "
              f"max {max(running):.2f} s ({runs} runs)")
        if last:
            print(f"wine: time to the 1000th file in C:\\Temp2 median {statistics.median(last):.2f} s, "
                  f"max {max(last):.2f} s ({len(last)} of {runs} runs)")
        print("wine: outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
        return EXIT_COMPLETED if outcomes.get("completed") == runs else EXIT_UNEXPECTED


# -- command line -------------------------------------------------------------------


def check_driver(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such file (build it with bash linux/build.sh [--fixed])")
    with open(p, "rb") as f:
        if f.read(2) != b"MZ":
            raise UsageError(f"{path}: not a PE image (no MZ header)")
    return p


def _runs(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"'{text}': expected a number of runs, 1..1000")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="winerun.py", description="Run TestDriver.sys under Wine with sc.exe.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="load the driver once and show what it does")
    r.add_argument("path", help="the driver, e.g. out/TestDriver.sys (its .pdb next to it names the frames)")
    r.add_argument("--settle", type=seconds_arg, default=3.0,
                   help="the folders unchanged for this many seconds end the wait (default 3)")
    r.add_argument("--wait", type=seconds_arg, default=30.0,
                   help="at most this many seconds for the 1000 files (default 30)")
    r.add_argument("--expect", choices=["deadlock", "completed"],
                   help="exit 0 if the outcome is this one, 1 otherwise (as tdemu run --expect)")
    r.add_argument("--dump", metavar="DIR", default=None,
                   help=f"write a full-memory dump of the driver's winedevice.exe to DIR/{DUMP_NAME} "
                        "(with TestDriver.sys and .pdb beside it) before sc stop")
    b = sub.add_parser("bench", help="time the prefix, sc start and the 1000 files over N runs")
    b.add_argument("path")
    b.add_argument("--runs", type=_runs, default=5, help="runs of the driver in one prefix (default 5)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse printed the message
        return EXIT_USAGE if e.code else EXIT_COMPLETED
    try:
        path = check_driver(args.path)
        if getattr(args, "dump", None):
            problem = report_dir_problem(args.dump)
            if problem:
                raise UsageError(f"--dump {args.dump}: {problem}")
            if (Path(args.dump) / DUMP_NAME).exists():
                raise UsageError(f"--dump {args.dump}: {DUMP_NAME} exists there already (remove it first)")
            if not FULLDUMP.is_file():
                raise UsageError(f"--dump: {FULLDUMP} is missing: bash linux/build.sh builds it")
    except UsageError as e:
        print(f"winerun.py: error: {e}", file=sys.stderr)
        return EXIT_USAGE

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    try:
        if args.cmd == "run":
            code = demo(path, args.settle, args.wait, Path(args.dump) if args.dump else None)
            if args.expect:
                return EXIT_COMPLETED if code == {"deadlock": EXIT_DEADLOCK, "completed": EXIT_COMPLETED}[
                    args.expect] else EXIT_UNEXPECTED
            return code
        return bench(path, args.runs)
    except KeyboardInterrupt:
        print("winerun.py: interrupted; the prefix was removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (WineError, OSError) as e:
        print(f"winerun.py: error: {e}", file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
