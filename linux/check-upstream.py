#!/usr/bin/env python3
"""Lists the newer releases of every version the project pins (run by linux/check-upstream.sh).

The pins: on crates.io, the dependencies of every Cargo.toml (not path ones), the crates of
Makefile.toml's load_script, the workflows' CARGO_MAKE_VERSION and CARGO_WDK_VERSION; on PyPI, the
`name==version` lines of every requirements*.txt; on npm, the dependencies of every package.json.
Each is asked of its registry's own client; a range is flagged; the pins no registry reachable here
serves are named with the reason (the workflow's WDK, LLVM and Rust toolchain, the actions' SHAs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = {".git", "target", ".venv", "node_modules", "__pycache__", "out", "report"}
DEP_TABLES = ("dependencies", "dev-dependencies", "build-dependencies")
# Workflow env values that name a crate the workflow installs.
WORKFLOW_CRATES = {"CARGO_MAKE_VERSION": "cargo-make", "CARGO_WDK_VERSION": "cargo-wdk"}
# Workflow env values no registry reachable from the project's machines serves.
WORKFLOW_UNCHECKED = {
    "WDK_VERSION": "the WDK's NuGet package (Microsoft.Windows.WDK.x64): NuGet is not reachable here",
    "LLVM_VERSION": "LLVM's release, installed from GitHub by install-llvm-action: not reachable here",
    "RUST_TOOLCHAIN": "the Rust release installed by rustup on the runner: not a registry reachable here "
                      "(Debian's rustc-web, which builds the driver on Linux, is kept by linux/env.sh)",
}
PRERELEASE = re.compile(r"[a-zA-Z]")


class PinError(Exception):
    """A pin file that cannot be read or parsed."""


@dataclass
class Pin:
    registry: str  # crates.io, PyPI, npm
    name: str
    version: str
    where: list[str] = field(default_factory=list)
    exact: bool = True


Unchecked = namedtuple("Unchecked", "what where why")  # a pin no registry reachable here serves


def files(root: Path, pattern: str) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".venv"))
        out += [Path(dirpath) / name for name in sorted(filenames) if re.fullmatch(pattern, name)]
    return out


def rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def cargo_pins(root: Path) -> list[Pin]:
    pins = []
    for path in files(root, r"Cargo\.toml"):
        try:
            manifest = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise PinError(f"{rel(root, path)}: {error}") from None
        for table in (m.get(t, {}) for m in [manifest, *manifest.get("target", {}).values()] for t in DEP_TABLES):
            for name, spec in table.items():
                if isinstance(spec, dict):
                    if "path" in spec or "git" in spec or "workspace" in spec:
                        continue
                    spec = spec.get("version")
                if not isinstance(spec, str):
                    raise PinError(f"{rel(root, path)}: dependency {name} has no version")
                pins.append(Pin("crates.io", name, spec.lstrip("="), [rel(root, path)], spec.startswith("=")))
    makefile = root / "Makefile.toml"
    if makefile.is_file():
        for m in re.finditer(r'^//!\s*([A-Za-z0-9_-]+)\s*=\s*"(=?)([^"]+)"', makefile.read_text(), re.MULTILINE):
            pins.append(Pin("crates.io", m.group(1), m.group(3), ["Makefile.toml (load_script)"], m.group(2) == "="))
    return pins


def python_pins(root: Path) -> list[Pin]:
    pins = []
    for path in files(root, r"requirements.*\.txt"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].split(";", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(==|>=|~=|<=|>|<|!=)?\s*(\S*)", line)
            if not m or not m.group(3):
                raise PinError(f"{rel(root, path)}:{number}: {line!r} is not NAME==VERSION")
            pins.append(Pin("PyPI", m.group(1), m.group(3), [f"{rel(root, path)}:{number}"], m.group(2) == "=="))
    return pins


def npm_pins(root: Path) -> list[Pin]:
    pins = []
    for path in files(root, r"package\.json"):
        try:
            package = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise PinError(f"{rel(root, path)}: {error}") from None
        for table in ("dependencies", "devDependencies", "optionalDependencies"):
            for name, spec in package.get(table, {}).items():
                exact = bool(re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", spec))
                pins.append(Pin("npm", name, spec.lstrip("^~="), [rel(root, path)], exact))
    return pins


def workflow_pins(root: Path) -> tuple[list[Pin], list[Unchecked]]:
    pins, unchecked = [], []
    workflows = root / ".github" / "workflows"
    for path in sorted(workflows.glob("*.y*ml")) if workflows.is_dir() else []:
        where = rel(root, path)
        for line in path.read_text().splitlines():
            m = re.fullmatch(r"\s+([A-Z][A-Z0-9_]*_(?:VERSION|TOOLCHAIN)):\s*['\"]?([^'\"\s#]+)['\"]?\s*(#.*)?", line)
            if m:
                key, value = m.group(1), m.group(2)
                if key in WORKFLOW_CRATES:
                    pins.append(Pin("crates.io", WORKFLOW_CRATES[key], value, [f"{where} ({key})"]))
                else:
                    unchecked.append(Unchecked(f"{key} {value}", where, WORKFLOW_UNCHECKED.get(
                        key, "no registry this script asks serves it")))
            m = re.fullmatch(r"\s*-?\s*uses:\s*([^\s@]+)@([0-9a-f]{40})\s*(?:#\s*(.*))?", line)
            if m:
                unchecked.append(Unchecked(f"{m.group(1)}@{m.group(2)[:12]} ({m.group(3) or 'no version comment'})",
                                           where, "an action pinned to a commit: GitHub is not reachable here"))
    return pins, unchecked


def collect(root: Path) -> tuple[list[Pin], list[Unchecked]]:
    pins, unchecked = workflow_pins(root)
    merged: dict[tuple[str, str, str], Pin] = {}
    for pin in cargo_pins(root) + python_pins(root) + npm_pins(root) + pins:
        first = merged.setdefault((pin.registry, pin.name.lower(), pin.version), pin)
        if first is not pin:  # the same pin in another file
            first.where += [w for w in pin.where if w not in first.where]
            first.exact &= pin.exact
    return sorted(merged.values(), key=lambda p: (p.registry, p.name.lower(), p.version)), unchecked


# ---------------------------------------------------------------------- the registries' answers

def run(command: list[str], cwd: str) -> str:
    p = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines()
        raise RuntimeError(f"{' '.join(command)} exited {p.returncode}: {lines[-1] if lines else 'no output'}")
    return p.stdout


def newer_crate(cargo: list[str], pin: Pin, cwd: str) -> list[str]:
    """`cargo info NAME@VERSION` says `version: VERSION (latest X)` when X is newer."""
    out = run(cargo + ["info", f"{pin.name}@{pin.version}"], cwd)
    m = re.search(r"^version:\s*(\S+)(?:\s*\(latest\s+([^)\s]+)\))?", out, re.MULTILINE)
    if not m:
        raise RuntimeError(f"cargo info {pin.name}@{pin.version} printed no version line")
    return [m.group(2)] if m.group(2) else []


def newer_python(pip: list[str], pin: Pin, cwd: str) -> list[str]:
    """`pip index versions NAME` lists every release, newest first."""
    pre = ["--pre"] if PRERELEASE.search(pin.version) else []
    out = run(pip + ["index", "versions", *pre, pin.name], cwd)
    m = re.search(r"^Available versions:\s*(.*)$", out, re.MULTILINE)
    if not m:
        raise RuntimeError(f"pip index versions {pin.name} printed no 'Available versions:' line")
    versions = [v.strip() for v in m.group(1).split(",") if v.strip()]
    if pin.version not in versions:
        raise RuntimeError(f"PyPI does not list {pin.name} {pin.version}")
    return versions[:versions.index(pin.version)]


def newer_npm(npm: list[str], pin: Pin, cwd: str) -> list[str]:
    """`npm view NAME versions --json` lists every release, oldest first; a release pin is offered no pre-release."""
    out = run(npm + ["view", pin.name, "versions", "--json"], cwd)
    try:
        versions = json.loads(out)
    except json.JSONDecodeError:
        raise RuntimeError(f"npm view {pin.name} versions printed no JSON") from None
    versions = [versions] if isinstance(versions, str) else versions
    if pin.version not in versions:
        raise RuntimeError(f"the npm registry does not list {pin.name} {pin.version}")
    return [v for v in reversed(versions[versions.index(pin.version) + 1:]) if "-" in pin.version or "-" not in v]


def ask(pins: list[Pin], cargo: str, pip: str, npm: str) -> tuple[int, int]:
    """Prints what the registries say of each pin; returns (pins with newer releases, unanswered)."""
    # The clients run in a temporary directory, outside the repository (none of its lock files
    # or configuration is read): a relative path is made absolute first.
    cargo, pip, npm = (os.path.abspath(client) if os.sep in client else client for client in (cargo, pip, npm))
    askers = {"crates.io": (newer_crate, [cargo]), "PyPI": (newer_python, [pip, "--disable-pip-version-check"]),
              "npm": (newer_npm, [npm])}
    newer = failed = 0
    with tempfile.TemporaryDirectory() as cwd:
        for pin in pins:
            asker, client = askers[pin.registry]
            label, where = f"{pin.registry:<9}  {pin.name} {pin.version}", f"  [{', '.join(pin.where)}]"
            try:
                found = asker(client, pin, cwd)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
                failed += 1
                print(f"{label}: NOT CHECKED: {error}", file=sys.stderr)
                continue
            newer += bool(found)
            print(f"{label}: newer: {', '.join(found)}{where}" if found else f"{label}: newest{where}")
            if not pin.exact:
                print(f"{label}: a range, not an exact pin{where}")
    return newer, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="check-upstream.py", description=__doc__.split("\n\n")[0],
        epilog="Exit: 0 every pin checked and none newer, 1 newer releases listed, 2 bad usage or a pin file "
        "that cannot be read (nothing is asked then), 3 a registry did not answer for some pin (named; the "
        "others are still listed).")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the repository (default: this script's)")
    parser.add_argument("--list", action="store_true", help="only list the pins found; ask no registry")
    parser.add_argument("--cargo", help="cargo, for cargo info")
    parser.add_argument("--pip", help="pip, for pip index versions")
    parser.add_argument("--npm", help="npm, for npm view")
    args = parser.parse_args(argv)
    if not args.list and not (args.cargo and args.pip and args.npm):
        parser.error("give --list, or --cargo, --pip and --npm (the registry clients to ask)")
    if not args.root.is_dir():
        parser.error(f"--root {args.root}: not a directory")
    try:
        pins, unchecked = collect(args.root.resolve())
    except (PinError, OSError, UnicodeDecodeError) as error:
        print(f"check-upstream: {error}", file=sys.stderr)
        return 2
    if args.list:
        for pin in pins:
            exact = "" if pin.exact else " (a range, not an exact pin)"
            print(f"{pin.registry:<9}  {pin.name} {pin.version}{exact}  [{', '.join(pin.where)}]")
    else:
        newer, failed = ask(pins, args.cargo, args.pip, args.npm)
    for u in unchecked:
        print(f"{'unchecked':<9}  {u.what}  [{u.where}]: {u.why}")
    if args.list:
        return 0
    print(f"check-upstream: {len(pins)} pin(s) asked, {newer} with newer releases, {failed} not answered, "
          f"{len(unchecked)} not checkable here")
    return 3 if failed else 1 if newer else 0


if __name__ == "__main__":
    sys.exit(main())
