"""Small C drivers for the tests, built from tests/drivers/*.c into a temporary directory (never
committed) with the toolchain linux/env.sh's `build` and `clang` groups install: clang-19 over mingw-w64's DDK
headers, an import library made by llvm-dlltool-19 from the symbols the object file needs, and
lld-link-19 with the WDM driver options (/DRIVER, /SUBSYSTEM:NATIVE, /ENTRY:DriverEntry) and /MAP,
so the emulator names the call sites."""

from __future__ import annotations

import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = os.path.join(HERE, "drivers")
MINGW_INCLUDE = "/usr/share/mingw-w64/include"
TOOLS = ("clang-19", "lld-link-19", "llvm-dlltool-19", "llvm-nm-19")


def missing_tools() -> list[str]:
    out = [t for t in TOOLS if shutil.which(t) is None]
    if not os.path.isfile(os.path.join(MINGW_INCLUDE, "ddk", "ntddk.h")):
        out.append(MINGW_INCLUDE + "/ddk/ntddk.h (Debian mingw-w64-common)")
    return out


def _run(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def build(name: str, out_dir: str, hal: tuple[str, ...] = (), defines: dict | None = None) -> str:
    """tests/drivers/NAME.c -> OUT_DIR/NAME.sys (and NAME.map). Symbols in `hal` are imported from
    hal.dll, every other one from ntoskrnl.exe."""
    os.makedirs(out_dir, exist_ok=True)
    src = os.path.join(SOURCES, name + ".c")
    obj = os.path.join(out_dir, name + ".o")
    resource = _run(["clang-19", "-print-resource-dir"]).strip()
    _run(["clang-19", "--target=x86_64-w64-windows-gnu", "-O1", "-ffreestanding", "-nostdinc", "-fno-builtin",
          "-Wall", "-Werror", "-Wno-#warnings", "-isystem", os.path.join(resource, "include"),
          "-isystem", MINGW_INCLUDE, "-isystem", os.path.join(MINGW_INCLUDE, "ddk"),
          *[f"-D{k}={v}" for k, v in (defines or {}).items()], "-c", src, "-o", obj])
    needed = set()
    for line in _run(["llvm-nm-19", "-u", obj]).splitlines():
        sym = line.split()[-1]
        needed.add(sym[len("__imp_"):] if sym.startswith("__imp_") else sym)
    libs = []
    for dll, syms in (("ntoskrnl.exe", sorted(needed - set(hal))), ("hal.dll", sorted(needed & set(hal)))):
        if not syms:
            continue
        stem = dll.split(".")[0]
        deffile = os.path.join(out_dir, f"{name}.{stem}.def")
        with open(deffile, "w") as f:
            f.write(f"LIBRARY {dll}\nEXPORTS\n" + "".join(f"  {s}\n" for s in syms))
        lib = os.path.join(out_dir, f"{name}.{stem}.lib")
        _run(["llvm-dlltool-19", "-m", "i386:x86-64", "-d", deffile, "-l", lib])
        libs.append(lib)
    sys_path = os.path.join(out_dir, name + ".sys")
    _run(["lld-link-19", "/driver", "/subsystem:native", "/entry:DriverEntry", "/nodefaultlib",
          f"/map:{os.path.join(out_dir, name + '.map')}", f"/out:{sys_path}", obj, *libs])
    return sys_path
