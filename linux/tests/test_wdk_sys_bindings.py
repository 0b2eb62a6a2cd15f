"""The stand-in wdk-sys ships its bindings (linux/wdk-sys/src/generated/), so
building the driver needs neither bindgen nor clang. They must be exactly what
linux/wdk-sys/generate.sh makes from the pinned headers (installed or fetched): regenerated
into a scratch folder and compared file by file, any difference named.
"""

import difflib
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATE = REPO / "linux" / "wdk-sys" / "generate.sh"
SHIPPED = REPO / "linux" / "wdk-sys" / "src" / "generated"
SHOWN_DIFF_LINES = 60


def generate(out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(GENERATE), str(out)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=1800)


def difference(name: str, shipped: str, made: str) -> str:
    diff = list(difflib.unified_diff(shipped.splitlines(), made.splitlines(),
                                     f"shipped/{name}", f"generated/{name}", lineterm="", n=1))
    more = len(diff) - SHOWN_DIFF_LINES
    return "\n".join(diff[:SHOWN_DIFF_LINES] + ([f"... and {more} more diff lines"] if more > 0 else []))


def test_the_shipped_bindings_are_what_generate_sh_makes_today(tmp_path):
    made_dir = tmp_path / "generated"
    p = generate(made_dir)
    assert p.returncode == 0, f"generate.sh failed:\n{p.stderr[-4000:]}"
    shipped = {f.name: f.read_text() for f in SHIPPED.iterdir()}
    made = {f.name: f.read_text() for f in made_dir.iterdir()}
    assert {"types.rs", "constants.rs", "status.rs", "ntddk.rs", "ntoskrnl.def"} <= set(made)
    differences = [f"only shipped: {sorted(set(shipped) - set(made))}"] if set(shipped) - set(made) else []
    differences += [f"only generated: {sorted(set(made) - set(shipped))}"] if set(made) - set(shipped) else []
    differences += [difference(name, shipped[name], made[name])
                    for name in sorted(set(shipped) & set(made)) if shipped[name] != made[name]]
    assert not differences, (
        "linux/wdk-sys/src/generated/ is not what generate.sh makes from today's headers; "
        "run bash linux/wdk-sys/generate.sh, review the difference and commit it:\n"
        + "\n".join(differences))


def test_generate_sh_refuses_headers_without_the_ddk_and_writes_nothing(tmp_path):
    out = tmp_path / "generated"
    p = generate(out, WDK_SYS_MINGW_INCLUDE=str(tmp_path))
    assert p.returncode == 1
    assert f"{tmp_path} has no ddk/ntifs.h" in p.stderr
    assert not out.exists()


def test_generate_sh_refuses_extra_arguments():
    p = subprocess.run(["bash", str(GENERATE), "a", "b"], capture_output=True, text=True)
    assert p.returncode == 2 and "at most one argument" in p.stderr


def test_the_driver_build_graph_has_no_bindgen_nor_clang():
    """linux/Cargo.lock is the Linux build's whole graph (driver, tests, stand-ins)."""
    names = set(re.findall(r'^name = "([^"]+)"$', (REPO / "linux" / "Cargo.lock").read_text(), re.M))
    assert "wdk-sys" in names
    assert not names & {"bindgen", "clang-sys", "cexpr"}, sorted(names & {"bindgen", "clang-sys", "cexpr"})


def test_generate_sh_refuses_a_headers_package_that_is_not_the_pinned_one(tmp_path):
    not_the_package = tmp_path / "mingw-w64-common_10.0.0-3_all.deb"
    not_the_package.write_bytes(b"!<arch>\nnot the pinned package\n")
    out = tmp_path / "generated"
    p = generate(out, WDK_SYS_HEADERS_URL=not_the_package.as_uri())
    assert p.returncode == 1
    assert f"{not_the_package.as_uri()} is not mingw-w64-common's pinned package (SHA-256" in p.stderr
    assert not out.exists()
    assert not list((REPO / "target").glob("mingw-w64-common.*")), "a scratch folder was left"


def test_generate_sh_says_when_the_headers_cannot_be_fetched(tmp_path):
    out = tmp_path / "generated"
    missing = (tmp_path / "absent.deb").as_uri()
    p = generate(out, WDK_SYS_HEADERS_URL=missing)
    assert p.returncode == 1
    assert f"cannot fetch {missing}" in p.stderr
    assert not out.exists()
    assert not list((REPO / "target").glob("mingw-w64-common.*")), "a scratch folder was left"
