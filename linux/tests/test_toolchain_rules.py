"""Rules of the real Windows toolchain that the Linux build must hold too.

The Linux build swaps wdk-sys and wdk-build for stand-ins; these tests hold the
driver to what the real crates accept, read from the real crates themselves
(the Windows build's Cargo.lock, through `cargo metadata`):

* `rust-version` in Cargo.toml is at least every dependency's own;
* every `wdk_sys` item the driver names is one the real wdk-sys 0.5.2 has:
  written by hand in its sources (`STATUS_*`, `NT_SUCCESS`, ...), or generated
  by bindgen the way it generates (no clang macro fallback), which the
  stand-in's shipped bindings (linux/wdk-sys/src/generated/) approximate from
  mingw-w64's headers.
"""

import json
import os
import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
CARGO = "/usr/bin/cargo"


@cache
def metadata() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RUSTC_BOOTSTRAP"}
    out = subprocess.run(
        [CARGO, "metadata", "--locked", "--format-version", "1", "--manifest-path",
         str(REPO / "Cargo.toml")],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    return json.loads(out)


def package(name: str) -> dict:
    return next(p for p in metadata()["packages"] if p["name"] == name)


def version_tuple(text: str) -> tuple[int, int, int]:
    """`1.91` and `1.91.0` are the same requirement."""
    major, minor, patch = (text.split(".") + ["0", "0"])[:3]
    return int(major), int(minor), int(patch)


def test_rust_version_is_at_least_every_dependencys():
    ours = package("TestDriver")["rust_version"]
    assert ours, "Cargo.toml has no rust-version"
    needs = {
        f"{p['name']} {p['version']}": p["rust_version"]
        for p in metadata()["packages"]
        if p["rust_version"] and p["name"] != "TestDriver"
    }
    newest = max(needs.values(), key=version_tuple)
    too_new = {who: v for who, v in needs.items() if version_tuple(v) > version_tuple(ours)}
    assert not too_new, f"rust-version {ours} is older than what {too_new} require"
    # The newest requirement is wdk-build 0.6.0's 1.91; keep ours no newer than needed.
    assert version_tuple(ours)[:2] == version_tuple(newest)[:2], (ours, newest)


# --- the wdk_sys items the driver names ---------------------------------------

def use_tree_paths(tree: str, prefix: str = "") -> list[str]:
    """Flattens a Rust use-tree body (`a::{b, c::{d}}, e`) into paths."""
    paths, depth, start = [], 0, 0
    parts = []
    for i, ch in enumerate(tree):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(tree[start:i])
            start = i + 1
    parts.append(tree[start:])
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if "{" in part:
            head, _, rest = part.partition("{")
            paths += use_tree_paths(rest.rsplit("}", 1)[0], prefix + head)
        else:
            paths.append(prefix + part.split(" as ")[0].strip())
    return paths


def driver_wdk_sys_items() -> set[str]:
    items = set()
    for source in sorted((REPO / "src").glob("*.rs")):
        text = re.sub(r"//[^\n]*", "", source.read_text())
        for body in re.findall(r"use\s+wdk_sys::\{(.*?)\};", text, flags=re.S):
            items.update(use_tree_paths(body))
        items.update(re.findall(r"use\s+wdk_sys::([A-Za-z_][\w:]*);", text))
        for path in re.findall(r"(?<!use )wdk_sys::((?:\w+::)*\w+)", text):
            # `wdk_sys::UNICODE_STRING::default()` names the type.
            *head, last = path.split("::")
            items.add("::".join(head) if head and head[-1] != "ntddk" and last[0].islower() else path)
    return {item for item in items if item and not item.startswith("{")}


@cache
def real_wdk_sys_sources() -> str:
    src = Path(package("wdk-sys")["manifest_path"]).parent / "src"
    assert package("wdk-sys")["version"] == "0.5.2"
    return "\n".join(p.read_text() for p in sorted(src.glob("*.rs")))


STAND_IN_GENERATED = REPO / "linux" / "wdk-sys" / "src" / "generated"


@cache
def generated(name: str) -> str:
    """The stand-in's bindings (test_wdk_sys_bindings.py holds them to what
    linux/wdk-sys/generate.sh makes)."""
    return (STAND_IN_GENERATED / name).read_text()


def defines(text: str, kinds: str, name: str) -> bool:
    return re.search(rf"\bpub\s+(?:{kinds})\s+{re.escape(name)}\b", text) is not None


def module_body(text: str, module: str) -> str:
    match = re.search(rf"\bpub\s+mod\s+{re.escape(module)}\s*\{{", text)
    if not match:
        return ""
    depth, i = 1, match.end()
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[match.end():i]


def in_real_wdk_sys(item: str) -> str | None:
    """Where the real wdk-sys 0.5.2 has `item`, or None."""
    *modules, name = item.split("::")
    hand = real_wdk_sys_sources()
    if not modules and (defines(hand, "const|const fn|fn|static", name)
                        or re.search(rf"macro_rules!\s*{name}\b", hand)):
        return "written by hand in wdk-sys 0.5.2"
    if name.startswith("STATUS_"):
        return None  # the real crate's STATUS_* are all hand-written
    if modules == ["ntddk"]:
        return "ntddk.rs (generated)" if defines(generated("ntddk.rs"), "fn", name) else None
    if len(modules) == 1:  # an enum's module of constants
        body = module_body(generated("types.rs"), modules[0])
        return "types.rs (generated)" if defines(body, "const", name) else None
    if modules:
        return None
    if defines(generated("types.rs"), "type|struct|union|mod", name):
        return "types.rs (generated)"
    if defines(generated("constants.rs"), "const", name):
        return "constants.rs (generated, no macro fallback)"
    return None


def test_every_wdk_sys_item_the_driver_names_is_one_the_real_crate_has():
    items = driver_wdk_sys_items()
    # The extraction sees the driver's own uses (a sanity floor, not a count).
    assert {"FAST_MUTEX", "ntddk::ExAcquireFastMutex", "STATUS_SUCCESS",
            "_FILE_INFORMATION_CLASS::FileRenameInformation", "POBJECT_TYPE"} <= items
    missing = sorted(item for item in items if in_real_wdk_sys(item) is None)
    assert not missing, f"not in the real wdk-sys 0.5.2: {missing}"


def test_the_stand_in_has_no_constant_that_only_clang_macro_fallback_makes():
    """The real crate runs bindgen without clang's macro fallback, so a macro
    with a cast is not a constant there; nor in the stand-in's constants.rs."""
    header = Path("/usr/share/mingw-w64/include/basetsd.h").read_text()
    assert re.search(r"#define\s+MAXULONG_PTR\s+\(~\s*\(\(ULONG_PTR\)0\)\)", header)
    assert not defines(generated("constants.rs"), "const", "MAXULONG_PTR")
    assert defines(generated("constants.rs"), "const", "FILE_ALL_ACCESS")


def test_the_stand_in_status_constants_are_the_real_crates():
    """Every STATUS_* the stand-in generates that the real crate lacks would let
    a driver compile here and fail on Windows: count them, and check that the
    driver names none of them."""
    real = set(re.findall(r"pub const (STATUS_\w+): NTSTATUS", real_wdk_sys_sources()))
    ours = set(re.findall(r"pub const (STATUS_\w+)\s*:", generated("status.rs")))
    assert len(real) > 2000 and len(ours) > 1000
    used = {item for item in driver_wdk_sys_items() if item.startswith("STATUS_")}
    assert used and used <= real & ours


def test_data_exports_are_imported_only_through_their_iat_symbol():
    """PsThreadType is a DATA export in the stand-in's ntoskrnl.lib: only
    `__imp_PsThreadType` exists. Stricter than the WDK's library, which also has
    the bare name (the import slot the WDK's C declaration links to): here only
    the dllimport form the driver declares links, and it links with any library."""
    definition = generated("ntoskrnl.def")
    assert re.search(r"^\s+PsThreadType DATA$", definition, flags=re.M)
    assert re.search(r"^\s+PsCreateSystemThread$", definition, flags=re.M)
    assert defines(generated("constants.rs"), "static mut|static", "PsThreadType")


def test_dependencies_keep_the_debug_information_that_names_their_procedures():
    """test_pe.py finds core::fmt and core::panicking in TestDriver.pdb by their
    procedure records, which core (built by -Zbuild-std with the profile's
    `package."*"` settings) only has with some debug information: line tables
    at least. The driver itself keeps full debug information, LTO and one
    codegen unit."""
    profile = tomllib.loads((REPO / "Cargo.toml").read_text())["profile"]["release"]
    assert (profile["lto"], profile["codegen-units"], profile["debug"]) == (True, 1, "full")
    others = profile.get("package", {}).get("*", {})
    assert others.get("debug", profile["debug"]) in {"line-tables-only", "limited", "full", 1, 2, True}
