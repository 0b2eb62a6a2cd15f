"""Inspects the TestDriver.sys images that linux/build.sh produced.

A Windows kernel driver must be an AMD64 PE32+ image with the native
subsystem, entered at DriverEntry, with FORCE_INTEGRITY set (windows-drivers-rs
links with /INTEGRITYCHECK), importing from ntoskrnl.exe only. Its import set
must hold every NT routine the seed calls, and its symbols (TestDriver.pdb)
must hold no panic or formatting machinery and no pool allocation.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pefile
import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "out" / "TestDriver.sys"
FIXED = REPO / "out" / "fixed" / "TestDriver.sys"

# Every NT routine the seed's C calls (ExInitializeFastMutex is an inline that
# calls KeInitializeEvent; RtlStringCchPrintfW is an inline the port replaces).
SEED_IMPORTS = {
    "IoCreateDevice", "IoDeleteDevice", "KeInitializeEvent", "PsCreateSystemThread",
    "ZwClose", "ExAcquireFastMutex", "ExReleaseFastMutex", "RtlInitUnicodeString",
    "ZwCreateFile", "ZwWriteFile", "ZwOpenFile", "ZwSetInformationFile",
}
# What the fixed build calls instead of ExAcquireFastMutex/ExReleaseFastMutex,
# for the event that orders the threads, for the unload that waits for the
# threads (PsThreadType is a data import: the thread object type), and for its
# logging.
FIXED_IMPORTS = (SEED_IMPORTS - {"ExAcquireFastMutex", "ExReleaseFastMutex"}) | {
    "KeEnterCriticalRegion", "ExAcquireFastMutexUnsafe", "ExReleaseFastMutexUnsafe",
    "KeLeaveCriticalRegion", "KeSetEvent", "ObReferenceObjectByHandle", "PsThreadType",
    "KeWaitForSingleObject", "ObfDereferenceObject", "DbgPrint",
}
# Compiler helpers ntoskrnl.exe exports, which the port's code may call.
RUNTIME_IMPORTS = {"memcpy", "memset", "memmove", "memcmp"}

IMAGE_FILE_MACHINE_AMD64 = 0x8664
IMAGE_SUBSYSTEM_NATIVE = 1
IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY = 0x80


def load(path: Path) -> pefile.PE:
    if not path.is_file():
        pytest.fail(f"{path} is missing: run linux/build.sh (and linux/build.sh --fixed) first")
    return pefile.PE(str(path))


def imports(pe: pefile.PE) -> dict[str, set[str]]:
    return {
        entry.dll.decode().lower(): {imp.name.decode() for imp in entry.imports}
        for entry in pe.DIRECTORY_ENTRY_IMPORT
    }


def pdb_procedures(sys_path: Path) -> list[str]:
    pdbutil = shutil.which("llvm-pdbutil-19") or shutil.which("llvm-pdbutil")
    assert pdbutil, "llvm-pdbutil-19 (Debian llvm-19) is needed to read TestDriver.pdb"
    dump = subprocess.run(
        [pdbutil, "dump", "-symbols", str(sys_path.with_suffix(".pdb"))],
        check=True, capture_output=True, text=True,
    ).stdout
    return [line.split("`")[1] for line in dump.splitlines() if "PROC32" in line and "`" in line]


@pytest.mark.parametrize("path", [DEFAULT, FIXED], ids=["default", "fixed"])
def test_image_is_an_amd64_native_driver_entered_at_driver_entry(path):
    pe = load(path)
    assert pe.FILE_HEADER.Machine == IMAGE_FILE_MACHINE_AMD64
    assert pe.OPTIONAL_HEADER.Magic == 0x20B, "PE32+"
    assert pe.OPTIONAL_HEADER.Subsystem == IMAGE_SUBSYSTEM_NATIVE
    assert pe.OPTIONAL_HEADER.DllCharacteristics & IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY
    exports = {e.name.decode(): e.address for e in pe.DIRECTORY_ENTRY_EXPORT.symbols if e.name}
    assert pe.OPTIONAL_HEADER.AddressOfEntryPoint == exports["DriverEntry"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [(DEFAULT, SEED_IMPORTS), (FIXED, FIXED_IMPORTS)],
    ids=["default", "fixed"],
)
def test_imports_are_the_nt_routines_of_the_seed_from_ntoskrnl_only(path, expected):
    by_dll = imports(load(path))
    assert set(by_dll) == {"ntoskrnl.exe"}
    names = by_dll["ntoskrnl.exe"]
    assert expected <= names, f"missing: {sorted(expected - names)}"
    assert names - expected <= RUNTIME_IMPORTS, f"unexpected: {sorted(names - expected - RUNTIME_IMPORTS)}"


@pytest.mark.parametrize(
    ("path", "module", "other"),
    [(DEFAULT, "seed", "fixed"), (FIXED, "fixed", "seed")],
    ids=["default", "fixed"],
)
def test_one_driver_per_image_and_no_panic_formatting_or_pool_allocation(path, module, other):
    procedures = pdb_procedures(path)
    for routine in ("file_creation_thread", "file_move_thread", "unload_driver", "driver_entry"):
        assert f"TestDriver::{module}::{routine}" in procedures
    assert not [p for p in procedures if p.startswith(f"TestDriver::{other}::")]
    forbidden = [p for p in procedures if p.startswith(("core::panicking", "core::fmt", "alloc::"))]
    assert forbidden == []
    assert "ExAllocatePool2" not in imports(load(path))["ntoskrnl.exe"]


def test_the_fixed_build_never_takes_the_raising_fast_mutex():
    names = imports(load(FIXED))["ntoskrnl.exe"]
    assert {"ExAcquireFastMutex", "ExReleaseFastMutex"}.isdisjoint(names)


def test_ps_thread_type_is_imported_as_data_through_the_iat():
    """The fixed driver reads *PsThreadType through its import address table
    entry (`__imp_PsThreadType`), as MSVC links a dllimport variable: the code
    loads the IAT slot, never calls it."""
    pe = load(FIXED)
    entry = next(e for e in pe.DIRECTORY_ENTRY_IMPORT if e.dll.decode().lower() == "ntoskrnl.exe")
    slot = next(imp.address for imp in entry.imports if imp.name == b"PsThreadType")
    text = next(s for s in pe.sections if s.Name.rstrip(b"\0") == b".text")
    code = text.get_data()
    base = pe.OPTIONAL_HEADER.ImageBase + text.VirtualAddress
    # mov reg, qword ptr [rip + disp32]: REX.W 8B /r with ModRM mod=00 rm=101.
    loads = [
        i for i in range(len(code) - 7)
        if code[i] in (0x48, 0x4C) and code[i + 1] == 0x8B and code[i + 2] & 0xC7 == 0x05
        and base + i + 7 + int.from_bytes(code[i + 3:i + 7], "little", signed=True) == slot
    ]
    assert loads, f"no RIP-relative load of the PsThreadType IAT slot {slot:#x}"
