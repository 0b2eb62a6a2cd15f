"""Inspects the TestDriver.sys images that linux/build.sh produced.

A Windows kernel driver must be an AMD64 PE32+ image with the native
subsystem, entered at DriverEntry, with FORCE_INTEGRITY set (windows-drivers-rs
links with /INTEGRITYCHECK), importing from ntoskrnl.exe only. Its import set
must hold every NT routine the seed calls, and its symbols (TestDriver.pdb)
must hold no panic or formatting machinery and no pool allocation.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import capstone
import pefile
import pytest
from capstone import x86

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
# threads (PsThreadType is a data import: the thread object type; DriverEntry
# waits with ZwWaitForSingleObject for a thread it could not reference), and
# for its logging.
FIXED_IMPORTS = (SEED_IMPORTS - {"ExAcquireFastMutex", "ExReleaseFastMutex"}) | {
    "KeEnterCriticalRegion", "ExAcquireFastMutexUnsafe", "ExReleaseFastMutexUnsafe",
    "KeLeaveCriticalRegion", "KeSetEvent", "ObReferenceObjectByHandle", "PsThreadType",
    "KeWaitForSingleObject", "ObfDereferenceObject", "DbgPrintEx", "ZwWaitForSingleObject",
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


def map_symbols(map_path: Path) -> dict[int, str]:
    """Address -> name of every public and static symbol of an lld-link /MAP file, demangled."""
    pattern = re.compile(r"^\s*[0-9a-f]{4}:[0-9a-f]{8}\s+(\S+)\s+([0-9a-f]{16})\s", re.IGNORECASE)
    found = {}
    for line in map_path.read_text().splitlines():
        m = pattern.match(line)
        if m:
            found.setdefault(int(m.group(2), 16), m.group(1))
    cxxfilt = shutil.which("llvm-cxxfilt-19") or shutil.which("llvm-cxxfilt")
    if cxxfilt and found:
        names = subprocess.run([cxxfilt], input="\n".join(found.values()), check=True, capture_output=True,
                               text=True).stdout.splitlines()
        found = dict(zip(found, names))
    return found


def panic_call_sites(sys_path: Path) -> list[str]:
    """Every call site from which KeBugCheckEx can be reached, read from the image's code and its .map:
    "caller+0xOFF calls callee", from the KeBugCheckEx call outward to the driver's own routines. A
    Rust panic reaches it through wdk-panic's handler (0x52504E43), so the outermost callers are where
    the panics come from."""
    pe = load(sys_path)
    base = pe.OPTIONAL_HEADER.ImageBase
    symbols = map_symbols(sys_path.with_suffix(".map"))
    entry = next(e for e in pe.DIRECTORY_ENTRY_IMPORT if e.dll.decode().lower() == "ntoskrnl.exe")
    slot = next(imp.address for imp in entry.imports if imp.name == b"KeBugCheckEx")
    text = next(s for s in pe.sections if s.Name.rstrip(b"\0") == b".text")
    start, data = base + text.VirtualAddress, text.get_data()
    starts = sorted(a for a in symbols if start <= a < start + len(data))
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    calls = []  # (caller, offset, callee)
    for k, fn in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else start + len(data)
        for insn in md.disasm(data[fn - start:end - start], fn):
            if insn.mnemonic not in ("call", "jmp") or len(insn.operands) != 1:
                continue
            op = insn.operands[0]
            if op.type == x86.X86_OP_IMM and op.imm in symbols and op.imm != fn:
                callee = symbols[op.imm]
            elif op.type == x86.X86_OP_MEM and op.mem.base == x86.X86_REG_RIP \
                    and insn.address + insn.size + op.mem.disp == slot:
                callee = "KeBugCheckEx"
            else:
                continue
            if callee != symbols[fn]:  # not the import's own thunk, `jmp [__imp_KeBugCheckEx]`
                calls.append((symbols[fn], insn.address - fn, callee))
    reaching, out, frontier = {"KeBugCheckEx"}, [], ["KeBugCheckEx"]
    while frontier:
        callee = frontier.pop(0)
        for caller, offset, target in calls:
            if target == callee:
                out.append(f"{caller}+{offset:#x} calls {callee}")
                if caller not in reaching:
                    reaching.add(caller)
                    frontier.append(caller)
    return out


@pytest.mark.parametrize("path", [DEFAULT, FIXED], ids=["default", "fixed"])
def test_no_panic_path_is_linked(path):
    """wdk-panic 0.5.0's handler bug-checks the machine (KeBugCheckEx 0x52504E43): a release image
    with no way to panic imports no KeBugCheckEx. If one ever does, the failure lists the call sites
    that lead to it, down to the driver's routines that can panic."""
    finding = panic_finding(path)
    if finding:
        pytest.fail(finding)


def panic_finding(path: Path) -> str | None:
    """None when the image imports no KeBugCheckEx, else what calls it."""
    if "KeBugCheckEx" not in imports(load(path))["ntoskrnl.exe"]:
        return None
    return (f"{path} imports KeBugCheckEx, so a panic is reachable:\n  "
            + "\n  ".join(panic_call_sites(path) or ["(no call site found in the code: read the .map)"]))


def test_the_panic_call_sites_are_named_from_the_code_and_the_map(tmp_path):
    """The naming that test_no_panic_path_is_linked relies on, on a small driver that bug-checks the
    way wdk-panic does: KeBugCheckEx from RustPanic, RustPanic from Worker."""
    sys.path.insert(0, str(REPO / "emulator" / "tests"))
    try:
        import cdriver
    finally:
        sys.path.pop(0)
    if cdriver.missing_tools():
        pytest.fail("the small test drivers need " + ", ".join(cdriver.missing_tools()))
    image = Path(cdriver.build("rust_panic", str(tmp_path), defines={"USE": 1}))
    sites = panic_call_sites(image)
    assert [site.split("+")[0] + " -> " + site.split(" calls ")[1] for site in sites] == [
        "RustPanic -> KeBugCheckEx", "Worker -> RustPanic"], sites
    assert panic_finding(image) == f"{image} imports KeBugCheckEx, so a panic is reachable:\n  " + "\n  ".join(sites)


def test_the_fixed_build_never_takes_the_raising_fast_mutex():
    names = imports(load(FIXED))["ntoskrnl.exe"]
    assert {"ExAcquireFastMutex", "ExReleaseFastMutex"}.isdisjoint(names)


def test_ps_thread_type_is_read_once_through_its_import_slot():
    """The fixed driver passes the value of the kernel's `POBJECT_TYPE
    PsThreadType` as ObReferenceObjectByHandle's ObjectType (r8): one load of
    the import address table slot (the variable's address), one load of the
    variable, nothing more. A third load would pass the first bytes of the
    OBJECT_TYPE instead, the call would fail with STATUS_OBJECT_TYPE_MISMATCH,
    and unload would not wait for the threads."""
    pe = load(FIXED)
    entry = next(e for e in pe.DIRECTORY_ENTRY_IMPORT if e.dll.decode().lower() == "ntoskrnl.exe")
    slot = next(imp.address for imp in entry.imports if imp.name == b"PsThreadType")
    text = next(s for s in pe.sections if s.Name.rstrip(b"\0") == b".text")
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    code = list(md.disasm(text.get_data(), pe.OPTIONAL_HEADER.ImageBase + text.VirtualAddress))

    def loads_from(insn, base, disp=None):
        if insn.mnemonic != "mov" or len(insn.operands) != 2:
            return None
        dst, src = insn.operands
        if src.type != x86.X86_OP_MEM or src.mem.base != base or src.mem.index != 0:
            return None
        if disp is not None and (insn.address + insn.size + src.mem.disp if base == x86.X86_REG_RIP
                                 else src.mem.disp) != disp:
            return None
        return dst.reg

    reads = [k for k, insn in enumerate(code) if loads_from(insn, x86.X86_REG_RIP, slot)]
    # One read in start_thread, or one per call site where the compiler inlines it.
    assert reads, "PsThreadType is never read"
    for k in reads:
        address_reg = loads_from(code[k], x86.X86_REG_RIP, slot)
        value_reg = loads_from(code[k + 1], address_reg, 0)
        assert value_reg == x86.X86_REG_R8, f"{code[k + 1].mnemonic} {code[k + 1].op_str}"
        assert not any(loads_from(insn, x86.X86_REG_R8) for insn in code[k + 2:k + 8]), \
            "r8 (the object type) dereferenced again"
