"""Runs the real TestDriver.sys under Wine: a throwaway prefix, sc.exe create/start, the files in
C:\\Temp and C:\\Temp2, the driver threads' stacks (winedbg), optionally a full-memory dump of the
host winedevice.exe (out/fulldump.exe), sc stop/delete. Usage, exit codes (tdemu's) and the Wine
behaviour this relies on: wine/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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
from collections import Counter, namedtuple
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "emulator"))
from tdemu.cli import EXIT_COMPLETED, EXIT_INTERNAL, report_dir_problem, seconds_arg, verdict  # noqa: E402

FULLDUMP = REPO / "out" / "fulldump.exe"  # wine/fulldump.c, built by linux/build.sh
WINE64, WINESERVER = Path("/usr/lib/wine/wine64"), Path("/usr/lib/wine/wineserver")
# Debian's Wine has no preloader to reserve the address of KUSER_SHARED_DATA (0x7ffe0000), so now and
# then a new process finds it taken and ends before any of its code ran, printing this.
NOT_STARTED = "failed to map the shared user data"
SERVICE = "TestDrv"
DRIVER_FILE, DRIVER_MODULE, DUMP_NAME = "TestDriver.sys", "testdriver.sys", "TestDriver.dmp"
FILE_DATA = b"Hello, World!\r\n" * 100  # what FileCreationThread writes to each file
EXPECTED_FILES = {f"NewFile_{i}.txt" for i in range(1000)}
EXIT_INTERRUPTED = 130
RUNNING = 4
SC_STATES = {1: "STOPPED", 2: "START_PENDING", 3: "STOP_PENDING", RUNNING: "RUNNING"}
# sc.exe errors while the service manager is not ready yet (just after wineboot)
SC_NOT_READY = (1053, 1055, 1060)
ERROR_NAMES = {1053: "the service did not respond in time", 1055: "the service database is locked",
               1056: "an instance of the service is already running", 1060: "the service does not exist",
               1062: "the service has not been started", 1072: "the service is marked for deletion",
               1073: "the service already exists"}
show = functools.partial(print, flush=True)


class WineError(RuntimeError):
    """Wine did not do what a step needs (timed out, failed, not installed)."""


def _call(argv: list[str], env: dict[str, str], timeout: float, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with a time limit, stdin /dev/null; a WineError when the limit is reached."""
    try:
        return subprocess.run(argv, env=env, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired as e:
        raise WineError(f"`{Path(argv[0]).name} {' '.join(argv[1:])}` did not return within {timeout:.0f} s") from e


def poll(fetch, done, timeout: float, interval: float):
    """fetch() every `interval` seconds until done(value) or `timeout` seconds have passed: the last value."""
    deadline = time.monotonic() + timeout
    while not done(value := fetch()) and time.monotonic() <= deadline:
        time.sleep(interval)
    return value


class Result(namedtuple("Result", "args returncode stdout stderr seconds")):
    """One finished wine command: its arguments, exit code, output (text) and duration."""

    @property
    def error(self) -> int | None:
        """The Win32 error sc.exe reported (`err:sc:... failed ... 1060`), if any."""
        m = re.search(r"err:sc:\S+ .*?failed.*?(\d+)\s*$", self.stderr, re.MULTILINE)
        return int(m.group(1)) if m else None

    def describe_error(self) -> str:
        code = self.error
        return f"exit {self.returncode}" if code is None else \
            f"error {code} ({ERROR_NAMES.get(code, 'see winerror.h')})"

    @property
    def tail(self) -> str:
        return (self.stdout + self.stderr).strip()[-500:]


def state_of(sc_output: str) -> int | None:
    m = re.search(r"STATE\s*:\s*(\d+)", sc_output)
    return int(m.group(1)) if m else None


class Frame(namedtuple("Frame", "index address function offset module source")):
    """One line of a winedbg backtrace; `function` and `offset` are None where winedbg has no symbol,
    `source` is file:line or None."""

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
    if n := _NOSYM_RE.match(rest):
        return Frame(index, address, None, int(n.group(2), 16), n.group(1), None)
    if not (s := _SYM_RE.match(rest)):
        return None
    src = s.group("src") and re.split(r"[\\/]", s.group("src"))[-1]  # file:line, not the build's directories
    off = s.group("off")
    return Frame(index, address, s.group("func"), int(off, 16) if off else None, s.group("mod"), src or None)


class Stack(namedtuple("Stack", "pid tid frames")):
    """A thread's backtrace (a list of Frame), as winedbg printed it."""

    def driver_frame(self) -> Frame | None:
        """The driver's frame at the first driver return address: winedbg lists inlined functions as
        frames of their own at one address (`acquire+0x8`, then `file_creation_thread+0x6a`); the
        last of them is the real function."""
        first = next((f for f in self.frames if f.module.lower().startswith("testdriver")), None)
        return [f for f in self.frames if (f.address, f.module) == (first.address, first.module)][-1] if first else None

    def called_routine(self) -> Frame | None:
        """The routine the driver frame called (the outermost frame just above it)."""
        drv = self.driver_frame()
        above = [f for f in self.frames if drv and f.index < drv.index and f.address != drv.address]
        return [f for f in above if f.address == above[-1].address][-1] if above else None

    @property
    def thread_function(self) -> str | None:
        drv = self.driver_frame()
        return drv.function if drv else None


class Files(namedtuple("Files", "temp temp2")):
    """What C:\\Temp and C:\\Temp2 hold: file name -> size."""

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
    names = sorted(listing, key=lambda n: (len(n), n))
    return f"{len(listing)} files ({names[0]}..{names[-1]}, {size}, {sum(listing.values()):,} bytes)"


def copy_driver(sys_path: Path, folder: Path) -> list[str]:
    """Copies the .sys and the .pdb next to it (if any) into `folder` as TestDriver.*; the names copied."""
    copied = []
    for src, name in ((sys_path, DRIVER_FILE), (sys_path.with_suffix(".pdb"), "TestDriver.pdb")):
        if src.is_file():
            (folder / name).unlink(missing_ok=True)  # a new file, not an overwrite: a winedevice.exe may map the old one
            shutil.copyfile(src, folder / name)
            copied.append(name)
    return copied


def _du(path: Path) -> int:
    """Bytes in the files under `path`, symlinks not followed (the prefix's Z: is /)."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


class Prefix(contextlib.AbstractContextManager):
    """A throwaway Wine prefix (a temporary directory under `parent`, default TMPDIR), its wineserver
    and a keeper process. close(), also on leaving a `with`, ends its processes and deletes it."""

    def __init__(self, parent: str | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="testdriver-wine-", dir=parent))
        self.path, self.home, self.log_path = self.root / "prefix", self.root / "home", self.root / "services.log"
        self.drive_c = self.path / "drive_c"
        self.home.mkdir()
        self.keeper: subprocess.Popen | None = None
        self.timings: dict[str, float] = {}
        self.closed = False

    def __exit__(self, *exc) -> None:
        self.close()

    def env(self, debug: str = "fixme-all") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")
               and k not in ("DISPLAY", "WAYLAND_DISPLAY", "WINESERVER", "WINELOADER")}
        # No Mono or Gecko installer, no menu entries; wineboot links the user folders to $HOME's.
        env.update(WINEPREFIX=str(self.path), WINEARCH="win64", WINEDEBUG=debug, HOME=str(self.home),
                   WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d")
        return env

    def create(self) -> None:
        """wineboot -i, then waits for its wineserver to end; C:\\Temp, C:\\Temp2, the keeper, services.exe."""
        if not WINE64.exists():
            raise WineError(f"{WINE64} is missing: install Debian's wine64 and wine "
                            "(bash linux/demo.sh --wine does it)")
        t0 = time.monotonic()
        boot = self.run(["wineboot", "-i"], timeout=180, debug="-all")
        if boot.returncode != 0:
            raise WineError(f"wineboot -i failed (exit {boot.returncode}): {boot.tail}")
        self._wineserver("-w", timeout=120)  # wineboot returns before its wineserver and services.exe end
        self.timings["prefix"] = time.monotonic() - t0
        for folder in ("Temp", "Temp2"):
            (self.drive_c / folder).mkdir()
        self._start_keeper()
        t1 = time.monotonic()
        r = poll(lambda: self.sc("query", "PlugPlay"), lambda r: state_of(r.stdout) == RUNNING, 120, 0.2)
        if state_of(r.stdout) != RUNNING:
            raise WineError(f"services.exe did not answer `sc query PlugPlay` within 120 s ({r.describe_error()})")
        self.timings["services"] = time.monotonic() - t1

    def _start_keeper(self) -> None:
        # Wine stops its services when no user process is left. cmd.exe's `pause` reads its stdin, a pipe
        # held open here: the keeper lives until close(). Services inherit its stderr: the log.
        with open(self.log_path, "wb") as log:
            self.keeper = subprocess.Popen(
                [str(WINE64), "cmd", "/c", "echo keeper-ready& pause >nul"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=self.env("fixme-all,+loaddll,+pid"), cwd=self.root)
        assert self.keeper.stdout is not None
        ready, _, _ = select.select([self.keeper.stdout], [], [], 60)
        if b"keeper-ready" not in (self.keeper.stdout.readline() if ready else b""):
            raise WineError("the keeper process (cmd.exe) did not start within 60 s")

    def _wineserver(self, flag: str, timeout: float) -> int:
        return _call([str(WINESERVER), flag], self.env("-all"), timeout, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL).returncode

    def close(self) -> list[str]:
        """Ends this prefix's processes and deletes it; returns what was done."""
        if self.closed:
            return []
        self.closed = True
        done = []
        if self.path.exists():
            procs: list[str] = []
            if self.keeper is not None and self.keeper.poll() is None:
                with contextlib.suppress(WineError):
                    procs = [name for _, name in self.processes()]
            try:
                code = self._wineserver("-k", timeout=30)
                self._wineserver("-w", timeout=30)
                what = f"ended {len(procs)} processes ({', '.join(sorted(set(procs)))})" if procs else \
                    "no process was left"
                done.append(f"wineserver -k: {what}; the prefix's wineserver has exited (exit {code})")
            except WineError as e:
                done.append(f"wineserver: {e}")
        if self.keeper is not None:
            self.keeper.kill()  # a no-op once it has exited
            try:
                self.keeper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                done.append(f"the keeper process {self.keeper.pid} did not exit")
            for pipe in filter(None, (self.keeper.stdin, self.keeper.stdout)):
                pipe.close()
        size = _du(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        done.append(f"removed {self.root} ({size / 1e6:.0f} MB)" if not self.root.exists()
                    else f"could not remove all of {self.root}")
        return done

    def run(self, args: list[str], timeout: float, debug: str = "fixme-all") -> Result:
        """Runs `wine64 ARGS` in this prefix with a time limit; again (twice at most) if Wine could not
        start the process (NOT_STARTED)."""
        for _attempt in range(3):
            t0 = time.monotonic()
            p = _call([str(WINE64), *args], self.env(debug), timeout, cwd=self.root, capture_output=True)
            out, err = (b.decode("utf-8", "replace").replace("\r\n", "\n") for b in (p.stdout, p.stderr))
            if p.returncode == 0 or NOT_STARTED not in err:
                break
        return Result(args, p.returncode, out, err, time.monotonic() - t0)

    def sc(self, *args: str, timeout: float = 30, retry: tuple[int, ...] = ()) -> Result:
        """sc.exe ARGS; retried for up to 30 s while it fails with an error in `retry`."""
        return poll(lambda: self.run(["sc", *args], timeout=timeout),
                    lambda r: r.returncode == 0 or r.error not in retry, 30, 0.3)

    def create_service(self) -> Result:
        """sc create of the kernel service for system32\\drivers\\TestDriver.sys."""
        return self.sc("create", SERVICE, "type=", "kernel", "binPath=",
                       "C:\\windows\\system32\\drivers\\" + DRIVER_FILE, retry=SC_NOT_READY)

    def stop_service(self) -> tuple[Result, bool]:
        """sc stop; returns its result and whether the log shows TestDriver.sys unloaded during it."""
        mark = len(self.log())
        r = self.sc("stop", SERVICE, timeout=90)
        return r, any("Unloaded module" in line for line in self.driver_log(mark))

    def query(self, service: str = SERVICE) -> tuple[int | None, Result]:
        r = self.sc("query", service)
        return state_of(r.stdout), r

    def _winedbg(self, *args: str) -> Result:
        return self.run(["winedbg", *args], timeout=60, debug="-all")

    def processes(self) -> list[tuple[int, str]]:
        """(pid, executable) of every Windows process of the prefix (winedbg `info process`)."""
        r = self._winedbg("--command", "info process")
        rows = re.findall(r"^([ =])([0-9a-f]{8})\s+\d+\s+[\\_ ]*'([^']+)'", r.stdout, re.MULTILINE)
        if r.returncode != 0 or not rows:  # it lists itself at least: none means it failed
            raise WineError(f"winedbg `info process` listed no process (exit {r.returncode}): {r.tail}")
        procs: list[tuple[int, str]] = []
        for mark, pid, exe in rows:
            if mark != "=":
                procs.append((int(pid, 16), exe))
            elif procs and procs[-1][1] == "start.exe":  # winedbg itself, and the start.exe that launched it
                procs.pop()
        return procs

    def threads(self) -> dict[int, tuple[str, list[int]]]:
        """pid -> (executable, thread ids) (winedbg `info thread`)."""
        r = self._winedbg("--command", "info thread")
        procs: dict[int, tuple[str, list[int]]] = {}
        current = None
        for line in r.stdout.splitlines():
            if p := re.match(r"^([0-9a-f]{8}) (?:\(D\) )?(\S+)", line):
                current = int(p.group(1), 16)
                procs[current] = (p.group(2).split("\\")[-1], [])
            elif (t := re.match(r"^\t([0-9a-f]{8})\s", line)) and current is not None:
                procs[current][1].append(int(t.group(1), 16))
        if r.returncode != 0 or not procs:
            raise WineError(f"winedbg `info thread` listed no process (exit {r.returncode}): {r.tail}")
        return procs

    def backtraces(self, pid: int, tids: list[int]) -> list[Stack]:
        """Each thread's stack: winedbg attaches to `pid`, runs `bt` per thread, detaches. winedbg exits 0
        even when `attach` failed, so its listing is checked for every thread asked for."""
        script = self.root / "winedbg-commands.txt"
        script.write_text("\n".join([f"attach 0x{pid:x}", *(f"print 0x{t:x}\nbt 0x{t:x}" for t in tids),
                                     "detach", "quit"]) + "\n")
        r = self._winedbg("--file", f"Z:{script}".replace("/", "\\"))
        stacks: list[Stack] = []
        for line in r.stdout.splitlines():
            m = re.match(r"^0x([0-9a-f]+)$", line.strip())  # `print 0xTID` before each `bt`
            if m and int(m.group(1), 16) in tids:
                stacks.append(Stack(pid, int(m.group(1), 16), []))
            elif stacks and (f := parse_frame(line)) is not None:
                stacks[-1].frames.append(f)
        failed = next((line for line in r.stdout.splitlines() if line.startswith("Can't attach")), None)
        if r.returncode != 0 or failed or [s.tid for s in stacks] != list(tids) or (
                tids and not any(s.frames for s in stacks)):
            raise WineError(f"winedbg did not walk the threads of pid 0x{pid:x} (exit {r.returncode}, "
                            f"{sum(1 for s in stacks if s.frames)} of {len(tids)} stacks): {failed or r.tail}")
        return stacks

    def winedevice_stacks(self) -> dict[int, list[Stack]]:
        """pid -> the stacks of all its threads, for every winedevice.exe."""
        return {pid: self.backtraces(pid, tids) for pid, (exe, tids) in sorted(self.threads().items())
                if exe.lower() == "winedevice.exe" and tids}

    def write_dump(self, pid: int, dump_dir: Path, sys_path: Path) -> tuple[Path, float]:
        """A full-memory minidump of process `pid` by out/fulldump.exe run in this prefix, moved to
        dump_dir/TestDriver.dmp with the .sys and .pdb beside it; its path and fulldump.exe's seconds."""
        exe, produced = self.root / "fulldump.exe", self.drive_c / DUMP_NAME
        shutil.copyfile(FULLDUMP, exe)
        produced.unlink(missing_ok=True)
        r = self.run([str(exe), f"0x{pid:x}", "C:\\" + DUMP_NAME, DRIVER_FILE], timeout=600)
        if r.returncode != 0 or not produced.is_file():
            raise WineError(f"fulldump.exe 0x{pid:x} failed (exit {r.returncode}): {r.tail}")
        dump_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(produced, dump_dir / DUMP_NAME)
        copy_driver(sys_path, dump_dir)
        return dump_dir / DUMP_NAME, r.seconds

    def driver_host_pid(self, since: int = 0) -> int | None:
        """The winedevice.exe that loaded TestDriver.sys after log line `since`, from its "Loaded" line."""
        for line in self.driver_log(since):
            if m := re.match(r"^([0-9a-f]{4,8}):[0-9a-f]{4,8}:trace:loaddll:.*Loaded L\"", line):
                return int(m.group(1), 16)
        return None

    def install(self, sys_path: Path) -> list[str]:
        """Copies the .sys (and the .pdb next to it) to system32\\drivers; returns the names copied."""
        return copy_driver(sys_path, self.drive_c / "windows" / "system32" / "drivers")

    def files(self) -> Files:
        def listing(folder: str) -> dict[str, int]:
            with contextlib.suppress(FileNotFoundError), os.scandir(self.drive_c / folder) as it:
                return {e.name: e.stat().st_size for e in it}
            return {}
        return Files(listing("Temp"), listing("Temp2"))

    def file_data_ok(self) -> bool:
        """Every file in C:\\Temp2 holds exactly what FileCreationThread writes."""
        return all(p.read_bytes() == FILE_DATA for p in (self.drive_c / "Temp2").iterdir())

    def clear_folders(self) -> None:
        for p in [*(self.drive_c / "Temp").iterdir(), *(self.drive_c / "Temp2").iterdir()]:
            p.unlink()

    def log(self) -> list[str]:
        """The lines services.exe and winedevice.exe wrote (WINEDEBUG=+loaddll,+pid and errors)."""
        return self.log_path.read_text("utf-8", "replace").splitlines() if self.log_path.exists() else []

    def driver_log(self, since: int = 0) -> list[str]:
        """The log lines about TestDriver.sys from line `since` on (loaded, unloaded)."""
        return [line for line in self.log()[since:] if DRIVER_MODULE in line.lower()]


@dataclass
class Run:
    """What one start of the service showed."""

    start: Result
    running_seconds: float  # sc start launched -> sc start returned RUNNING
    files: Files
    stacks: list[Stack] = field(default_factory=list)  # the threads with a TestDriver.sys frame
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
    """Lists C:\\Temp and C:\\Temp2 every 10 ms until the 1000 files are moved, nothing changed for `quiet`
    seconds, or `limit` seconds have passed. The last listing and, if complete, the seconds since `started`."""
    last, changed, deadline = None, time.monotonic(), time.monotonic() + limit
    while not (files := prefix.files()).moved_ok():
        if files != last:
            last, changed = files, time.monotonic()
        if time.monotonic() - changed > quiet or time.monotonic() > deadline:
            return files, None
        time.sleep(0.01)
    return files, time.monotonic() - started


def run_once(prefix: Prefix, settle: float, wait: float, stacks: bool = True) -> Run:
    """Starts the service (created already), waits, then looks at files, state and (with `stacks`)
    every winedevice.exe thread."""
    mark = len(prefix.log())
    t0 = time.monotonic()
    start, running = start_service(prefix)
    if state_of(start.stdout) != RUNNING:
        return Run(start, running, prefix.files(), state=state_of(start.stdout), driver_lines=prefix.driver_log(mark))
    files, last = wait_for_files(prefix, t0, wait, quiet=settle)
    run = Run(start, running, files, last_file_seconds=last, driver_lines=prefix.driver_log(mark),
              host_pid=prefix.driver_host_pid(mark), state=prefix.query()[0])
    if stacks:
        walked = prefix.winedevice_stacks()
        run.host_stacks = walked.get(run.host_pid, []) if run.host_pid else []
        run.stacks = [s for pid_stacks in walked.values() for s in pid_stacks if s.driver_frame() is not None]
    return run


def wait_processes_gone(prefix: Prefix, pids: set[int], limit: float) -> bool:
    return not poll(lambda: {pid for pid, _ in prefix.processes()} & pids, lambda alive: not alive, limit, 0.5)


# -- `run`: the demo -----------------------------------------------------------------


def _show_sc(r: Result, note: str = "") -> None:
    show(f"C:\\> sc.exe {' '.join(r.args[1:])}")
    for line in r.stdout.strip("\n").splitlines() + [e for e in r.stderr.splitlines() if ":err:sc:" in e]:
        show("    " + line)
    show(f"    ({r.describe_error() if r.returncode else 'exit 0'}, {r.seconds:.2f} s{'; ' + note if note else ''})")


def _wine_version() -> str:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "wine64"], capture_output=True,
                             text=True, timeout=10).stdout
        return f"wine64 {out.strip()}".strip()
    return "wine64"


def _show_stacks(run: Run) -> None:
    if not run.stacks:
        host = (f", of the {len(run.host_stacks)} threads of its winedevice.exe (pid 0x{run.host_pid:x})"
                if run.host_pid else "")
        show(f"winedbg: no thread of TestDriver.sys is left{host}: the driver's threads have ended")
        return
    show(f"winedbg: {len(run.stacks)} thread(s) in TestDriver.sys "
         f"(winedevice.exe, pid 0x{run.stacks[0].pid:x}), symbols from TestDriver.pdb:")
    for s in run.stacks:
        drv, called = s.driver_frame(), s.called_routine()
        assert drv is not None
        waits = f"waits in {called.name}" if called is not None else "running"
        show(f"  thread 0x{s.tid:04x}: {drv.function}, {waits}, return address 0x{drv.address:x}")
        for f in s.frames:
            if f.module.lower().startswith(("kernel32", "ntdll")) and f.index > drv.index:
                break
            show("    " + f.line())


def _describe_deadlock(run: Run) -> str:
    def waiting(routine: str) -> Frame | None:
        return next((s.driver_frame() for s in run.blocked if routine in (s.thread_function or "")), None)

    creation, move = waiting("file_creation_thread"), waiting("file_move_thread")
    parts = [f"FileCreationThread waits in ExAcquireFastMutex for the mutex it already holds ({creation.name})"
             ] if creation else []
    if move:
        parts.append(f"FileMoveThread waits behind it ({move.name})")
    elif creation:
        parts.append("FileMoveThread took the mutex first, found none of the files and ended")
    return "; ".join(parts) or f"{len(run.blocked)} thread(s) wait in ExAcquireFastMutex"


def _outcome(outcome: str) -> str:
    show(f"Outcome: {outcome} (exit {verdict(outcome)})")
    return outcome


def demo(sys_path: Path, settle: float, wait: float, dump_dir: Path | None = None) -> str:
    """The run, printed step by step; returns its outcome (deadlock, completed, or what went wrong)."""
    show(f"== Wine ({_wine_version()}): {sys_path} loaded by sc.exe into winedevice.exe")
    prefix = Prefix()
    try:
        show(f"Making a throwaway prefix in {prefix.path} (wineboot -i; about 10 s) ...")
        prefix.create()
        show(f"  prefix ready in {prefix.timings['prefix']:.1f} s ({_du(prefix.path) / 1e6:.0f} MB); "
             f"services.exe answered after {prefix.timings['services']:.1f} s more")
        copied = prefix.install(sys_path)
        show(f"  made C:\\Temp and C:\\Temp2 (empty); copied {' and '.join(copied)} to C:\\windows\\system32\\drivers")
        if len(copied) == 1:
            show("  (no TestDriver.pdb next to the .sys: stacks will show offsets, not names)")
        show()

        create = prefix.create_service()
        _show_sc(create, "Wine's sc.exe prints nothing on success" if create.returncode == 0 else "")
        if create.returncode != 0:
            return _outcome("sc create failed")
        run = run_once(prefix, settle, wait)
        started = state_of(run.start.stdout) == RUNNING
        _show_sc(run.start, f"RUNNING {run.running_seconds:.2f} s after sc start was launched" if started else "")
        for line in run.driver_lines[:1]:
            show(f"    winedevice.exe: {line[line.find('Loaded'):]}")
        if not started:
            return _outcome("the service did not reach RUNNING")
        show()

        show(f"The 1000th file was in C:\\Temp2 {run.last_file_seconds:.2f} s after sc start was launched."
             if run.last_file_seconds is not None else
             f"The folders did not change for {settle:g} s after sc start (checked every 10 ms).")
        show(run.files.summary())
        if run.files.temp2 and run.last_file_seconds is not None:
            show(f"  every file holds {len(FILE_DATA)} bytes of 'Hello, World!\\r\\n' x 100: "
                 f"{'yes' if prefix.file_data_ok() else 'NO'}")
        show(f"sc query {SERVICE}: STATE {run.state} {SC_STATES.get(run.state or 0, '?')}")
        _show_stacks(run)
        show()
        if run.outcome == "deadlock":
            show(f"*** DEADLOCK under Wine: {_describe_deadlock(run)}. C:\\Temp and C:\\Temp2 stay empty.")
        elif run.outcome == "completed":
            show("*** COMPLETED under Wine: NewFile_0.txt..NewFile_999.txt (1500 bytes each) in C:\\Temp2, "
                 "C:\\Temp empty, both threads ended.")
        else:
            show("*** UNEXPECTED under Wine: neither the deadlock nor the 1000 files moved to C:\\Temp2 "
                 f"({run.files.summary()}; {len(run.stacks)} driver thread(s) left).")
        show()

        if dump_dir is not None:
            if run.host_pid is None:
                raise WineError("no 'Loaded ...TestDriver.sys' line names the winedevice.exe to dump")
            show(f"Writing a full-memory dump of winedevice.exe (pid 0x{run.host_pid:x}) with fulldump.exe "
                 "(MiniDumpWriteDump: full memory, handles, thread info) ...")
            dest, seconds = prefix.write_dump(run.host_pid, dump_dir, sys_path)
            beside = ", ".join(sorted(p.name for p in dump_dir.iterdir() if p.suffix != ".dmp"))
            show(f"Dump: {dest} ({dest.stat().st_size / 1e6:.1f} MB) written in {seconds:.1f} s, with {beside} beside it")
            show()

        # sc stop, in words: its state, the unload in the log, whether the host process exited
        pids = {s.pid for s in run.stacks} | ({run.host_pid} if run.host_pid else set())
        stop, unloaded = prefix.stop_service()
        _show_sc(stop)
        state = state_of(stop.stdout)
        said = [f"STATE {state} {SC_STATES.get(state or 0, '?')} after {stop.seconds:.2f} s",
                "Wine ran DriverUnload, then unloaded TestDriver.sys (log: \"Unloaded module ...TestDriver.sys\")"
                if unloaded else "no unload of TestDriver.sys was logged"]
        if pids:
            where = f"winedevice.exe (pid {', '.join(f'0x{p:x}' for p in sorted(pids))})"
            ending = f", ending the {len(run.stacks)} thread(s) still in the driver with it" if run.stacks else ""
            said.append(f"{where} then exited (its only driver was gone){ending}"
                        if wait_processes_gone(prefix, pids, 10) else f"{where} is still running")
        show("  " + "; ".join(said))
        delete = prefix.sc("delete", SERVICE)
        after, q = prefix.query()
        _show_sc(delete, f"then sc query {SERVICE}: " + (q.describe_error() if after is None else f"STATE {after}"))
        show()
        return _outcome(run.outcome)
    finally:
        show("\nTeardown:")
        for line in prefix.close():
            show(f"  {line}")


# -- `bench` ---------------------------------------------------------------------------


def bench(sys_path: Path, runs: int) -> int:
    with Prefix() as prefix:
        prefix.create()
        prefix.install(sys_path)
        create = prefix.create_service()
        if create.returncode != 0:
            print(f"wine: sc create failed: {create.describe_error()}", file=sys.stderr)
            return EXIT_INTERNAL
        running, last, outcomes = [], [], Counter()
        for _ in range(runs):
            prefix.clear_folders()
            r = run_once(prefix, settle=3, wait=30, stacks=False)
            running.append(r.running_seconds)
            if r.last_file_seconds is not None:
                last.append(r.last_file_seconds)
            outcomes["completed" if r.files.moved_ok() else
                     "files left in C:\\Temp" if r.files.temp and not r.files.temp2 else "other"] += 1
            prefix.sc("stop", SERVICE, timeout=90)
        print(f"wine: prefix creation {prefix.timings['prefix']:.1f} s (wineboot -i), "
              f"services ready {prefix.timings['services']:.1f} s later")
        print(f"wine: time to RUNNING (sc start) median {statistics.median(running):.2f} s, "
              f"max {max(running):.2f} s ({runs} runs)")
        if last:
            print(f"wine: time to the 1000th file in C:\\Temp2 median {statistics.median(last):.2f} s, "
                  f"max {max(last):.2f} s ({len(last)} of {runs} runs)")
        print("wine: outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
        return EXIT_COMPLETED if outcomes["completed"] == runs else EXIT_INTERNAL


# -- command line: bad usage is refused by argparse (exit 2, tdemu's EXIT_BAD_INPUT) before any prefix --


def driver_arg(text: str) -> Path:
    try:
        with open(text, "rb") as f:
            if f.read(2) == b"MZ":
                return Path(text)
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"{text}: no such file (build it with bash linux/build.sh [--fixed])") \
            from None
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{text}: cannot read: {e.strerror}") from None
    raise argparse.ArgumentTypeError(f"{text}: not a PE image (no MZ header)")


def dump_arg(text: str) -> Path:
    if problem := report_dir_problem(text):
        raise argparse.ArgumentTypeError(f"{text}: {problem}")
    if (Path(text) / DUMP_NAME).exists():
        raise argparse.ArgumentTypeError(f"{text}: {DUMP_NAME} exists there already (remove it first)")
    if not FULLDUMP.is_file():
        raise argparse.ArgumentTypeError(f"{FULLDUMP} is missing: bash linux/build.sh builds it where "
                                         "gcc-mingw-w64-x86-64-win32 (env.sh's wine group) is installed")
    return Path(text)


def runs_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"'{text}': expected a number of runs, 1..1000")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="winerun.py", description="Run TestDriver.sys under Wine with sc.exe.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="load the driver once and show what it does")
    r.add_argument("path", type=driver_arg,
                   help="the driver, e.g. out/TestDriver.sys (its .pdb next to it names the frames)")
    r.add_argument("--settle", type=seconds_arg, default=3.0,
                   help="the folders unchanged for this many seconds end the wait (default 3)")
    r.add_argument("--wait", type=seconds_arg, default=30.0,
                   help="at most this many seconds for the 1000 files (default 30)")
    r.add_argument("--expect", choices=["deadlock", "completed"],
                   help="exit 0 if the outcome is this one, 1 otherwise (as tdemu run --expect)")
    r.add_argument("--dump", metavar="DIR", type=dump_arg,
                   help=f"write a full-memory dump of the driver's winedevice.exe to DIR/{DUMP_NAME} "
                        "(with TestDriver.sys and .pdb beside it) before sc stop")
    b = sub.add_parser("bench", help="time the prefix, sc start and the 1000 files over N runs")
    b.add_argument("path", type=driver_arg)
    b.add_argument("--runs", type=runs_arg, default=5, help="runs of the driver in one prefix (default 5)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # as Ctrl-C: the prefix is removed on the way out
        signal.signal(sig, signal.default_int_handler)
    try:
        if args.cmd == "bench":
            return bench(args.path, args.runs)
        return verdict(demo(args.path, args.settle, args.wait, args.dump), args.expect)
    except KeyboardInterrupt:
        print("winerun.py: interrupted; the prefix was removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (WineError, OSError) as e:
        print(f"winerun.py: error: {e}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
