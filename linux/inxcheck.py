#!/usr/bin/env python3
"""Checks a driver package's INX on Linux for what stampinf and InfVerif (run by the Windows package
flows, failing the build) would reject. It is not InfVerif; its rules and their names (encoding,
stampinf, version, primitive, universal, dirid13, references): docs/windows.md, "The package and its INF".

    python3 linux/inxcheck.py [--package NAME] FILE.inx...

Exit: 0 every file passes, 1 a rule fails (each finding printed as FILE:LINE: [rule] message),
2 bad usage or a file that cannot be read. Writes nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import namedtuple
from pathlib import Path

DIRID_DRIVER_STORE = "13"
# Windows 10 version 1709: DIRID 13 (CopyFiles and ServiceBinary) exists from this build on.
DIRID13_MIN_OS = (10, 0, 16299)
ARCHITECTURES = ("amd64", "arm64", "x86", "arm", "ia64")
# "Using a Universal INF File": sections and directives a universal INF may not use.
UNIVERSAL_BAD_SECTION_SUFFIXES = (".coinstallers", ".factdef", ".logconfigoverride")
UNIVERSAL_BAD_DIRECTIVES = {
    "bitreg", "delfiles", "delproperty", "delreg", "delservice", "ini2reg", "logconfig",
    "profileitems", "registerdlls", "renfiles", "unregisterdlls", "updateinifields", "updateinis",
}
UNIVERSAL_COPYFILES_DIRIDS = {"11", "12", "13"}
SERVICE_KEYS = {key.lower(): key for key in ("ServiceType", "StartType", "ErrorControl", "ServiceBinary")}
GUID = re.compile(r"^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$")
PLACEHOLDER = re.compile(r"\$[A-Za-z_ ]+\$")
STRING_TOKEN = re.compile(r"%([^%]*)%")
QUOTED = re.compile(r'^"(.*)"$', re.DOTALL)
# The text before a ';' outside double quotes (a quote left open runs to the end of the line).
BEFORE_COMMENT = re.compile(r'(?:[^";]|"[^"]*(?:"|$))*')


class InxError(Exception):
    """The file cannot be checked at all (unreadable, undecodable)."""


class Line(namedtuple("Line", "number key value name", defaults=("",))):
    """`key` lower-cased (None for a line without '='), `value` the text right of '=' (or the whole line),
    comment removed, stripped, `name` the key as written."""


class Section(namedtuple("Section", "name number lines")):
    """A section: its name as written, its header's line number, its Lines."""

    def values(self, key: str) -> list[Line]:
        return [line for line in self.lines if line.key == key]

    def first(self, key: str) -> Line | None:
        return next(iter(self.values(key)), None)


Finding = namedtuple("Finding", "line rule message")


def decode(data: bytes) -> str:
    """The INF's text, from UTF-16LE with a BOM or from ASCII; InxError for anything else."""
    if data.startswith(b"\xff\xfe"):
        body = data[2:]
        if len(body) % 2:
            raise InxError("UTF-16LE (it starts with the FF FE byte order mark) but has an odd number of bytes")
        try:
            return body.decode("utf-16-le")
        except UnicodeDecodeError as error:
            raise InxError(f"not valid UTF-16LE at byte {error.start + 2:#x}: {error.reason}") from None
    if data.startswith(b"\xfe\xff"):
        raise InxError("UTF-16 big-endian (FE FF byte order mark): an INF is UTF-16LE (FF FE) or ASCII")
    if data.startswith(b"\xef\xbb\xbf"):
        raise InxError("UTF-8 with a byte order mark: an INF is UTF-16LE with a byte order mark, or ASCII")
    if (bad := next((i for i, b in enumerate(data) if b >= 0x80), None)) is not None:
        raise InxError(f"byte {data[bad]:#04x} at offset {bad:#x} is not ASCII and the file has no UTF-16LE "
                       "byte order mark: an INF with non-ASCII text must be UTF-16LE with a byte order mark")
    return data.decode("ascii")


def parse(text: str) -> tuple[dict[str, Section], list[Finding]]:
    """Sections by lower-cased name (repeated sections merge, as Windows merges them)."""
    sections: dict[str, Section] = {}
    findings: list[Finding] = []
    current: Section | None = None
    pending, pending_number = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        body = BEFORE_COMMENT.match(raw).group(0).strip()
        if pending:
            body, number, pending = pending + body, pending_number, ""
        if body.endswith("\\"):  # a line continuation
            pending, pending_number = body[:-1], number
            continue
        if not body:
            continue
        if body.startswith("["):
            if not body.endswith("]"):
                findings.append(Finding(number, "references", f"section header {body!r} has no closing ']'"))
                current = None
                continue
            name = body[1:-1].strip()
            current = sections.setdefault(name.lower(), Section(name, number, []))
            continue
        if current is None:
            findings.append(Finding(number, "references", f"{body!r} is outside any section"))
            continue
        key, eq, value = body.partition("=")
        if eq and not key.strip().startswith('"'):
            current.lines.append(Line(number, key.strip().lower(), value.strip(), key.strip()))
        else:
            current.lines.append(Line(number, None, body))
    return sections, findings


def fields(value: str) -> list[str]:
    """The comma-separated fields of a value, surrounding quotes removed."""
    return [QUOTED.sub(r"\1", part.strip()) for part in value.split(",")]


# A section's platform decoration, NT<arch>[.major[.minor[.ProductType[.SuiteMask[.build]]]]]: `arch` is ''
# (plain NT), '$ARCH$' or an architecture; `version` (major, minor, build) when a TargetOSVersion is given.
Decoration = namedtuple("Decoration", "arch version product_or_suite")


def decoration_of(suffix: str) -> Decoration | None:
    """SUFFIX is what follows 'DefaultInstall.' in a section name, up to '.Services'."""
    match = re.fullmatch(r"nt(\$arch\$|[a-z0-9]*)((?:\.[^.]*){0,5})", suffix, re.IGNORECASE)
    if not match:
        return None
    arch = match.group(1)
    if arch and arch.lower() != "$arch$" and arch.lower() not in ARCHITECTURES:
        return None
    parts = match.group(2).split(".")[1:]
    if not parts:
        return Decoration(arch, None, False)
    major, minor, product, suite, build = (parts + [""] * 5)[:5]
    try:
        version = (int(major or 0), int(minor or 0), int(build or 0))
    except ValueError:
        return None
    return Decoration(arch, version, bool(product or suite))


class Checker:
    def __init__(self, sections: dict[str, Section], package: str):
        self.s, self.package = sections, package
        # The files of the package folder an INF may install (besides the INF and catalog).
        self.package_files = [f"{package}.sys", f"{package}.pdb"]
        self.findings: list[Finding] = []

    def add(self, line: int, rule: str, message: str) -> None:
        self.findings.append(Finding(line, rule, message))

    def section(self, name: str) -> Section | None:
        return self.s.get(name.lower())

    # ------------------------------------------------------------------ strings
    def expand(self, value: str, line: int) -> str:
        """VALUE with %strkey% replaced from [Strings]; %<number>% (a DIRID) and %% are kept."""
        strings = self.section("Strings")

        def one(m: re.Match) -> str:
            key = m.group(1)
            if key == "" or key.isdigit():
                return m.group(0)
            found = strings and strings.first(key.lower())
            if not found:
                self.add(line, "references", f"%{key}% is not defined in [Strings]")
                return m.group(0)
            return fields(found.value)[0] if found.value.startswith('"') else found.value

        return STRING_TOKEN.sub(one, value)

    def check_strings(self) -> None:
        for key, section in self.s.items():
            for line in section.lines if key != "strings" else []:
                self.expand(line.value, line.number)

    # ------------------------------------------------------------------ stampinf
    def check_placeholders(self, text: str) -> None:
        for number, raw in enumerate(text.splitlines(), 1):
            code = BEFORE_COMMENT.match(raw).group(0)
            for m in PLACEHOLDER.finditer(code):
                token = m.group(0)
                if token.upper() == "$WINDOWS NT$" and re.match(r"\s*signature\s*=", code, re.IGNORECASE):
                    continue
                if token.upper() == "$ARCH$":
                    if not code[:m.start()].upper().endswith("NT"):
                        self.add(number, "stampinf", "$ARCH$ stands alone: stampinf fills it with the "
                                 "architecture (amd64) and it belongs after NT in a decoration, as NT$ARCH$")
                    continue
                self.add(number, "stampinf", f"{token} is not filled for a WDM driver: both package flows run "
                         "stampinf with -a (which fills $ARCH$) and no -k or -u, so it would reach the INF as is")

    # ------------------------------------------------------------------ [Version]
    def check_version(self) -> None:
        version = self.section("Version")
        if version is None:
            self.add(1, "version", "no [Version] section")
            return
        signature = version.first("signature")
        if signature is None or fields(signature.value)[0].upper() != "$WINDOWS NT$":
            self.add(signature.number if signature else version.number, "version",
                     'Signature must be "$WINDOWS NT$"')
        for key in ("provider", "class", "classguid"):
            found = version.first(key)
            value = fields(self.expand(found.value, found.number))[0] if found else ""
            if not value:
                self.add(found.number if found else version.number, "version",
                         f"[Version] {key.title() if key != 'classguid' else 'ClassGuid'} must be filled in "
                         "(a primitive driver's [Version] section is complete, as a PnP driver's)")
            elif key == "classguid" and not GUID.match(value):
                self.add(found.number, "version", f"ClassGuid {value!r} is not a {{GUID}}")

    # ------------------------------------------------------------------ primitive driver
    def install_sections(self) -> list[tuple[Section, Decoration | None]]:
        """[DefaultInstall*] sections but .Services ones, with the decoration after 'DefaultInstall.'."""
        decorated = "defaultinstall."
        return [(section, decoration_of(section.name[len(decorated):]) if key.startswith(decorated) else None)
                for key, section in self.s.items()
                if key.startswith("defaultinstall") and not key.endswith(".services")]

    def check_primitive(self) -> list[tuple[Section, Decoration]]:
        manufacturer = self.section("Manufacturer")
        if manufacturer:
            self.add(manufacturer.number, "primitive", "a primitive driver INF has no [Manufacturer] section "
                     "(DefaultInstall and Manufacturer together also fail the universal INF check)")
        decorated = []
        installs = self.install_sections()
        if not installs:
            self.add(1, "primitive", "no [DefaultInstall.NT$ARCH$...] section: nothing installs the driver")
        for section, decoration in installs:
            if decoration is None:
                self.add(section.number, "primitive", f"[{section.name}] is not architecture-decorated: a "
                         "primitive driver's DefaultInstall sections are, e.g. [DefaultInstall.NT$ARCH$.10.0...16299]")
            elif not decoration.arch:
                self.add(section.number, "primitive", f"[{section.name}] names no architecture (NT alone): "
                         "write NT$ARCH$, which stampinf fills from -a")
            else:
                decorated.append((section, decoration))
        for key, section in self.s.items():
            if key.startswith("defaultuninstall"):
                legacy = section.first("legacyuninstall")
                if legacy is None or legacy.value.strip() != "1":
                    self.add(section.number, "primitive", f"[{section.name}]: a primitive driver has no "
                             "DefaultUninstall section unless it holds LegacyUninstall=1")
            if key.startswith("defaultinstall") and key.endswith(".services"):
                if key[:-len(".services")] not in self.s:
                    self.add(section.number, "references", f"[{section.name}] belongs to no [{section.name[:-9]}] "
                             "section, so Windows never processes it (its decoration must match the install "
                             "section's exactly)")
        return decorated

    # ------------------------------------------------------------------ universal INF
    def check_universal(self, installs: list[tuple[Section, Decoration]]) -> None:
        for key, section in self.s.items():
            if key.startswith("classinstall32") or key.endswith(UNIVERSAL_BAD_SECTION_SUFFIXES):
                self.add(section.number, "universal", f"[{section.name}] is not valid in a universal INF")
            for line in section.lines:
                if line.key in UNIVERSAL_BAD_DIRECTIVES and key != "strings":
                    self.add(line.number, "universal", f"{line.name} is not valid in a universal INF")
                if line.key == "addreg":
                    for name in fields(line.value):
                        self.check_addreg(name, line.number)
        for section, decoration in installs:
            if decoration.product_or_suite:
                self.add(section.number, "universal", f"[{section.name}]: a TargetOSVersion with a ProductType "
                         "or SuiteMask is not valid in a universal INF")

    def check_addreg(self, name: str, number: int) -> None:
        target = self.section(name)
        if target is None:
            self.add(number, "references", f"AddReg names [{name}], which does not exist")
            return
        for line in target.lines:
            root = fields(self.expand(line.value if line.key is None else f"{line.key}={line.value}",
                                      line.number))[0].upper()
            if root != "HKR":
                self.add(line.number, "universal", f"[{target.name}] writes under {root}: a universal INF "
                         "writes registry values under HKR only")

    # ------------------------------------------------------------------ files and DIRID 13
    def destination(self, file_list: str) -> list[str] | None:
        dirs = self.section("DestinationDirs")
        found = dirs and (dirs.first(file_list.lower()) or dirs.first("defaultdestdir"))
        return fields(found.value) if found else None

    def copies(self, section: Section) -> list[tuple[str, list[str], Line]]:
        """(file-list section or @file, destination fields, the CopyFiles line) for each copy."""
        out = []
        for line in section.values("copyfiles"):
            for name in fields(line.value):
                if not name:
                    continue
                dest = self.destination("" if name.startswith("@") else name)
                if dest is None:
                    self.add(line.number, "references", f"CopyFiles={name}: no DestinationDirs entry for it "
                             "and no DefaultDestDir")
                    continue
                out.append((name, dest, line))
        return out

    def files_of(self, name: str, number: int) -> list[tuple[str, str, int]]:
        """(destination name, source name, line) of a CopyFiles entry: @file or a file-list section."""
        if name.startswith("@"):
            return [(name[1:], name[1:], number)]
        file_list = self.section(name)
        if file_list is None:
            self.add(number, "references", f"CopyFiles names [{name}], which does not exist")
            return []
        entries = [(fields(line.value if line.key is None else f"{line.key}={line.value}") + [""], line.number)
                   for line in file_list.lines]
        return [(entry[0], entry[1] or entry[0], number) for entry, number in entries]

    def check_files(self, installs: list[tuple[Section, Decoration]]) -> None:
        disks = self.section("SourceDisksNames")
        disk_ids = {(line.key or fields(line.value)[0]).strip() for line in disks.lines} if disks else set()
        source_files = self.section("SourceDisksFiles")
        listed: dict[str, list[str]] = {}
        if source_files is None:
            self.add(1, "references", "no [SourceDisksFiles] section: inf2cat and the install find no files")
        else:
            for line in source_files.lines:
                written = line.name or line.value
                name = written.lower()
                listed[name] = fields(line.value) if line.key else []
                if line.key and (not listed[name] or listed[name][0] not in disk_ids):
                    self.add(line.number, "references", f"{written} names disk {listed[name][:1]}, which "
                             "[SourceDisksNames] does not list")
                if name not in {f.lower() for f in self.package_files}:
                    self.add(line.number, "references", f"{written} is not in the driver package: the package "
                             f"flows put only {' and '.join(self.package_files)} there")
        copied_sys = False
        for section, decoration in installs:
            store_uses = []
            for name, dest, line in self.copies(section):
                dirid = dest[0]
                if dirid not in UNIVERSAL_COPYFILES_DIRIDS and not (dirid == "10" and len(dest) > 1 and dest[1]):
                    self.add(line.number, "universal", f"CopyFiles={name} copies to DIRID {','.join(dest)}: a "
                             "universal INF copies only to DIRID 11, 12, 13 or 10,<folder>")
                for target, source, number in self.files_of(name, line.number):
                    if source.lower() not in listed:
                        self.add(number, "references", f"{source} is copied but [SourceDisksFiles] does not list it")
                    copied_sys |= target.lower() == f"{self.package}.sys".lower()
                    if dirid == DIRID_DRIVER_STORE and target.lower() != source.lower():
                        self.add(number, "universal", f"{source} is renamed to {target} in DIRID 13: CopyFiles "
                                 "may not rename a file copied to the driver store")
                if dirid == DIRID_DRIVER_STORE:
                    store_uses.append((line.number, f"CopyFiles={name} (DIRID 13, the driver store)"))
            store_uses += self.check_services(section)
            self.check_dirid13(section, decoration, store_uses)
        if installs and not copied_sys:
            self.add(installs[0][0].number, "references", f"no install section copies {self.package}.sys")

    def check_services(self, install: Section) -> list[tuple[int, str]]:
        """Checks the .Services section of INSTALL; returns its uses of DIRID 13."""
        services = self.section(install.name + ".Services")
        if services is None:
            return []
        uses = []
        for line in services.values("addservice"):
            entry = fields(line.value)
            if len(entry) < 3 or not entry[2]:
                self.add(line.number, "references", "AddService needs a service name, flags and a service-install "
                         "section")
                continue
            target = self.section(entry[2])
            if target is None:
                self.add(line.number, "references", f"AddService names [{entry[2]}], which does not exist")
                continue
            for key in SERVICE_KEYS:
                if target.first(key) is None:
                    self.add(target.number, "references", f"[{target.name}] has no {SERVICE_KEYS[key]} "
                             "(AddService requires ServiceType, StartType, ErrorControl and ServiceBinary)")
            binary = target.first("servicebinary")
            if binary and binary.value.startswith(f"%{DIRID_DRIVER_STORE}%"):
                uses.append((binary.number, f"ServiceBinary={binary.value} in [{target.name}] (through "
                             f"[{services.name}])"))
        return uses

    def check_dirid13(self, section: Section, decoration: Decoration, uses: list[tuple[int, str]]) -> None:
        if not uses or (decoration.version is not None and decoration.version >= DIRID13_MIN_OS):
            return
        arch = decoration.arch or "$ARCH$"
        has = ("no TargetOSVersion" if decoration.version is None
               else "TargetOSVersion {}.{} build {}".format(*decoration.version))
        for number, what in uses:
            self.add(number, "dirid13", f"{what}: DIRID 13 exists from Windows 10.0 build 16299 on, and "
                     f"[{section.name}] has {has}, so InfVerif fails the INF with "
                     f"error 1199; decorate it (and its .Services) [DefaultInstall.NT{arch}.10.0...16299]")

    def run(self, text: str) -> list[Finding]:
        self.check_placeholders(text)
        self.check_version()
        self.check_strings()
        installs = self.check_primitive()
        self.check_universal(installs)
        self.check_files(installs)
        return sorted(self.findings, key=lambda f: (f.line, f.rule, f.message))


def check(path: Path, package: str | None = None) -> list[Finding]:
    """The findings for the INX at PATH; InxError when it cannot be read or decoded."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InxError(f"cannot read it: {error.strerror}") from None
    text = decode(data)
    sections, findings = parse(text)
    return findings + Checker(sections, package or path.stem).run(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inxcheck.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", help="the package name (default: each file's name without .inx): "
                        "the INF installs <package>.sys")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.inx")
    args = parser.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            findings = check(path, args.package)
        except InxError as error:
            print(f"inxcheck.py: {path}: {error}", file=sys.stderr)
            status = 2
            continue
        for f in findings:
            print(f"{path}:{f.line}: [{f.rule}] {f.message}")
        if findings:
            status = max(status, 1)
            print(f"{path}: {len(findings)} finding(s)", file=sys.stderr)
        else:
            print(f"{path}: ok (encoding, stampinf, version, primitive, universal, dirid13, references)")
    return status


if __name__ == "__main__":
    sys.exit(main())
