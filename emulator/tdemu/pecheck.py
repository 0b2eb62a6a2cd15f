"""Validation of the input file before anything is emulated or written: every check raises BadInput
with a one-line message a person can act on."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import pefile

IMAGE_FILE_MACHINE_AMD64 = 0x8664
IMAGE_SUBSYSTEM_NATIVE = 1
KERNEL_IMPORT_DLLS = {"ntoskrnl.exe", "hal.dll", "fltmgr.sys", "wdfldr.sys", "ndis.sys", "cng.sys", "ksecdd.sys"}


class BadInput(Exception):
    """The file given is not something the harness can run."""


@dataclass
class DriverImage:
    path: str
    data: bytes
    sha256: str
    image_base: int
    entry_rva: int
    size_of_image: int
    imports: dict[str, list[str]] = field(default_factory=dict)
    # RVA of each import address table slot -> (dll, name)
    iat: dict[int, tuple[str, str]] = field(default_factory=dict)
    sections: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, rva, vsize, characteristics
    runtime_functions: list[tuple[int, int, int]] = field(default_factory=list)  # begin, end, unwind rva

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]


def load_driver_image(path: str) -> DriverImage:
    if not path:
        raise BadInput("no driver path given")
    if not os.path.exists(path):
        raise BadInput(f"{path}: no such file")
    if os.path.isdir(path):
        raise BadInput(f"{path}: is a directory, expected a .sys file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BadInput(f"{path}: cannot read: {e.strerror}") from e
    if len(data) < 2 or data[:2] != b"MZ":
        raise BadInput(f"{path}: not a PE file (no MZ header)")
    try:
        pe = pefile.PE(data=data, fast_load=True)
    except pefile.PEFormatError as e:
        raise BadInput(f"{path}: not a valid PE file ({e.value})") from e

    if pe.FILE_HEADER.Machine != IMAGE_FILE_MACHINE_AMD64:
        raise BadInput(f"{path}: PE machine is 0x{pe.FILE_HEADER.Machine:04x}, expected x64 (0x8664) for this harness")
    opt = pe.OPTIONAL_HEADER
    # Truncation: every section's raw data and the headers must be inside the file.
    end_of_raw = opt.SizeOfHeaders
    for s in pe.sections:
        if s.SizeOfRawData:
            end_of_raw = max(end_of_raw, s.PointerToRawData + s.SizeOfRawData)
    if len(data) < end_of_raw:
        raise BadInput(f"{path}: truncated PE file: {len(data)} bytes, but its sections need {end_of_raw} bytes")
    try:
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
                                               pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXCEPTION"]])
    except Exception as e:  # pefile raises assorted errors on damaged directories
        raise BadInput(f"{path}: damaged PE data directories ({e})") from e

    imp_dir = opt.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]]
    if imp_dir.VirtualAddress or imp_dir.Size:
        warnings = [w for w in pe.get_warnings() if "import" in w.lower()]
        if imp_dir.VirtualAddress + imp_dir.Size > opt.SizeOfImage:
            why = f"it lies at RVA {imp_dir.VirtualAddress:#x}+{imp_dir.Size:#x}, outside the image ({opt.SizeOfImage:#x})"
        elif warnings:
            why = warnings[0]
        elif not getattr(pe, "DIRECTORY_ENTRY_IMPORT", None):
            why = f"no readable import descriptor at RVA {imp_dir.VirtualAddress:#x}"
        else:
            why = None
        if why:
            raise BadInput(f"{path}: damaged import directory ({why})")

    imports: dict[str, list[str]] = {}
    iat: dict[int, tuple[str, str]] = {}
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        dll = entry.dll.decode("ascii", "replace").lower()
        names = []
        for imp in entry.imports:
            nm = imp.name.decode("ascii", "replace") if imp.name else f"ordinal_{imp.ordinal}"
            names.append(nm)
            iat[imp.address - opt.ImageBase] = (dll, nm)
        imports[dll] = names

    kernel_dlls = set(imports) & KERNEL_IMPORT_DLLS
    if opt.Subsystem != IMAGE_SUBSYSTEM_NATIVE or not kernel_dlls:
        kind = {2: "Windows GUI", 3: "Windows console", 10: "EFI application"}.get(opt.Subsystem, f"subsystem {opt.Subsystem}")
        reasons = []
        if opt.Subsystem != IMAGE_SUBSYSTEM_NATIVE:
            reasons.append(f"its subsystem is {kind}, not Native")
        if not kernel_dlls:
            reasons.append("it imports nothing from ntoskrnl.exe")
        raise BadInput(f"{path}: PE is not a kernel driver ({'; '.join(reasons)})")
    if opt.AddressOfEntryPoint == 0:
        raise BadInput(f"{path}: kernel driver has no entry point (DriverEntry)")

    sections = [(s.Name.rstrip(b"\0").decode("ascii", "replace"), s.VirtualAddress, s.Misc_VirtualSize,
                 s.Characteristics) for s in pe.sections]
    rfs = sorted((st.BeginAddress, st.EndAddress, st.UnwindData if hasattr(st, "UnwindData") else st.UnwindInfoAddress)
                 for st in (rf.struct for rf in getattr(pe, "DIRECTORY_ENTRY_EXCEPTION", []) or []))

    return DriverImage(path=os.path.abspath(path), data=data, sha256=hashlib.sha256(data).hexdigest(),
                       image_base=opt.ImageBase, entry_rva=opt.AddressOfEntryPoint, size_of_image=opt.SizeOfImage,
                       imports=imports, iat=iat, sections=sections, runtime_functions=rfs)
