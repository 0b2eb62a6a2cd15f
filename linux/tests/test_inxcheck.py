"""linux/inxcheck.py: TestDriver.inx passes; the INX before the 10.0...16299 decoration (commit
23ff809, kept in tests/inx/) and variants that break one rule each fail with the rule named, a
message that says what to change, exit 1; files it cannot read or decode exit 2. It writes
nothing either way."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "linux" / "inxcheck.py"
INX = REPO / "TestDriver.inx"
OLD_INX = Path(__file__).resolve().parent / "inx" / "TestDriver-23ff809.inx"
DECORATED = "DefaultInstall.NT$ARCH$.10.0...16299"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def text() -> str:
    data = INX.read_bytes()
    assert data[:2] == b"\xff\xfe", "TestDriver.inx is UTF-16LE with a byte order mark"
    return data[2:].decode("utf-16-le")


def write(tmp_path: Path, body: str, name="TestDriver.inx") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\xff\xfe" + body.encode("utf-16-le"))
    return path


def findings(p) -> list[str]:
    return [line for line in p.stdout.splitlines() if ": [" in line]


def test_the_inx_passes_every_rule():
    p = run(INX)
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout == f"{INX}: ok (encoding, stampinf, version, primitive, universal, dirid13, references)\n"


def test_the_inx_is_decorated_as_upstream_in_both_sections():
    sections = [line for line in text().splitlines() if line.startswith("[DefaultInstall")]
    assert sections == [f"[{DECORATED}]", f"[{DECORATED}.Services]"]


def test_the_old_inx_fails_at_both_uses_of_dirid_13(tmp_path):
    old = tmp_path / "TestDriver.inx"
    old.write_bytes(OLD_INX.read_bytes())
    p = run(old)
    assert p.returncode == 1
    assert p.stderr == f"{old}: 2 finding(s)\n"
    copy, service = findings(p)
    assert copy.startswith(f"{old}:26: [dirid13] CopyFiles=TestDriver.CopyFiles (DIRID 13, the driver store)")
    assert service.startswith(f"{old}:39: [dirid13] ServiceBinary=%13%\\TestDriver.sys in [TestDriver.Service]")
    for line in (copy, service):
        assert "[DefaultInstall.NT$ARCH$] has no TargetOSVersion" in line and "error 1199" in line
        assert line.endswith(f"decorate it (and its .Services) [{DECORATED}]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TestDriver.inx"]


def test_package_name_comes_from_the_file_name_or_the_option(tmp_path):
    other = write(tmp_path, text(), "Other.inx")
    p = run(other)
    assert p.returncode == 1 and "no install section copies Other.sys" in p.stdout
    assert "TestDriver.sys is not in the driver package: the package flows put only Other.sys and Other.pdb there" \
        in p.stdout
    assert run("--package", "TestDriver", other).returncode == 0


VARIANTS = {
    # The decoration without a build number is 10.0 build 0: still earlier than 16299.
    "no build": ((DECORATED, "DefaultInstall.NT$ARCH$.10.0"), "dirid13",
                 "[DefaultInstall.NT$ARCH$.10.0] has TargetOSVersion 10.0 build 0, so InfVerif fails"),
    "build 15063": ((DECORATED, "DefaultInstall.NT$ARCH$.10.0...15063"), "dirid13", "build 15063"),
    # DIRID 12 for the files still leaves the ServiceBinary in the driver store.
    "service binary only": (((DECORATED, "DefaultInstall.NT$ARCH$"), ("DefaultDestDir = 13", "DefaultDestDir = 12")),
                            "dirid13", "ServiceBinary=%13%\\TestDriver.sys in [TestDriver.Service]"),
    ".Services left behind": ((f"[{DECORATED}.Services]", "[DefaultInstall.NT$ARCH$.Services]"), "references",
                              "[DefaultInstall.NT$ARCH$.Services] belongs to no [DefaultInstall.NT$ARCH$] section"),
    "undecorated": ((f"[{DECORATED}]", "[DefaultInstall]"), "primitive",
                    "[DefaultInstall] is not architecture-decorated"),
    "NT alone": ((DECORATED, "DefaultInstall.NT.10.0...16299"), "primitive", "names no architecture"),
    "Manufacturer": (("[Strings]", "[Manufacturer]\r\n%ProviderString% = Models\r\n\r\n[Strings]"), "primitive",
                     "a primitive driver INF has no [Manufacturer] section"),
    "DefaultUninstall": (("[Strings]", "[DefaultUninstall.NT$ARCH$]\r\nDelFiles = TestDriver.CopyFiles\r\n\r\n[Strings]"),
                         "primitive", "has no DefaultUninstall section unless it holds LegacyUninstall=1"),
    "KMDF placeholder": (("ServiceType   = 1", "ServiceType   = $KMDFVERSION$"), "stampinf",
                         "$KMDFVERSION$ is not filled for a WDM driver"),
    "ARCH alone": (('ProviderString = "TestDriver"', 'ProviderString = "TestDriver $ARCH$"'), "stampinf",
                   "$ARCH$ stands alone"),
    "no Provider": (("Provider    = %ProviderString%\r\n", ""), "version", "[Version] Provider must be filled in"),
    "bad ClassGuid": (("{4d36e97d-e325-11ce-bfc1-08002be10318}", "{4d36e97d}"), "version", "is not a {GUID}"),
    "Signature": (('"$WINDOWS NT$"', '"$CHICAGO$"'), "version", 'Signature must be "$WINDOWS NT$"'),
    "DelFiles": (("CopyFiles = TestDriver.CopyFiles", "CopyFiles = TestDriver.CopyFiles\r\nDelFiles = TestDriver.CopyFiles"),
                 "universal", "DelFiles is not valid in a universal INF"),
    "DIRID 10": (("DefaultDestDir = 13", "DefaultDestDir = 10"), "universal", "copies to DIRID 10"),
    "ProductType": ((DECORATED, "DefaultInstall.NT$ARCH$.10.0.1..16299"), "universal",
                    "a TargetOSVersion with a ProductType or SuiteMask"),
    "rename in the store": (("[TestDriver.CopyFiles]\r\nTestDriver.sys", "[TestDriver.CopyFiles]\r\nDriver.sys,TestDriver.sys"),
                            "universal", "TestDriver.sys is renamed to Driver.sys in DIRID 13"),
    "AddReg HKLM": (("CopyFiles = TestDriver.CopyFiles", "CopyFiles = TestDriver.CopyFiles\r\nAddReg = Reg\r\n\r\n[Reg]\r\n"
                     "HKLM,Software\\TestDriver,Value,,1"), "universal", "writes under HKLM"),
    "undefined string": (("%ServiceDesc%", "%Missing%"), "references", "%Missing% is not defined in [Strings]"),
    "file not in the package": (("[TestDriver.CopyFiles]\r\nTestDriver.sys", "[TestDriver.CopyFiles]\r\nTestDriver.sys\r\nHelper.dll"),
                                "references", "Helper.dll is copied but [SourceDisksFiles] does not list it"),
    "service section missing": (("AddService = TestDrv,,TestDriver.Service", "AddService = TestDrv,,TestDriver.Svc"),
                                "references", "AddService names [TestDriver.Svc], which does not exist"),
    "no ServiceBinary": (("ServiceBinary = %13%\\TestDriver.sys\r\n", ""), "references",
                         "[TestDriver.Service] has no ServiceBinary"),
    "unknown disk": (("TestDriver.sys = 1,,", "TestDriver.sys = 2,,"), "references",
                     "names disk ['2'], which [SourceDisksNames] does not list"),
}


@pytest.mark.parametrize("change,rule,needle", VARIANTS.values(), ids=VARIANTS.keys())
def test_a_variant_that_breaks_a_rule_fails_naming_it(tmp_path, change, rule, needle):
    body = text()
    for old, new in (change if isinstance(change[0], tuple) else (change,)):
        assert old in body, old
        body = body.replace(old, new)
    path = write(tmp_path, body)
    p = run(path)
    assert p.returncode == 1, p.stdout
    assert any(f"[{rule}] " in line and needle in line for line in findings(p)), p.stdout
    assert p.stderr.endswith(" finding(s)\n")


def test_a_fixed_architecture_and_a_later_os_pass(tmp_path):
    body = text().replace(DECORATED, "DefaultInstall.NTamd64.10.0...19041")
    assert run(write(tmp_path, body)).returncode == 0


def test_an_ascii_inx_passes_as_stampinf_reads_both_encodings(tmp_path):
    path = tmp_path / "TestDriver.inx"
    path.write_bytes(text().encode("ascii"))
    assert run(path).returncode == 0


ENCODINGS = {
    "UTF-8 with BOM": (lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"), "UTF-8 with a byte order mark"),
    "UTF-16BE": (lambda t: b"\xfe\xff" + t.encode("utf-16-be"), "UTF-16 big-endian"),
    "UTF-8 non-ASCII": (lambda t: t.replace("demo", "d\u00e9mo").encode("utf-8"),
                        "is not ASCII and the file has no UTF-16LE byte order mark"),
    "odd length": (lambda t: b"\xff\xfe" + t.encode("utf-16-le") + b"\x00", "has an odd number of bytes"),
    "lone surrogate": (lambda t: b"\xff\xfe" + t.encode("utf-16-le") + b"\x00\xd8", "not valid UTF-16LE"),
}


@pytest.mark.parametrize("encode,needle", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_an_encoding_stampinf_does_not_read_is_bad_input(tmp_path, encode, needle):
    path = tmp_path / "TestDriver.inx"
    path.write_bytes(encode(text()))
    p = run(path)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr.startswith(f"inxcheck.py: {path}: ") and needle in p.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TestDriver.inx"]


def test_usage_errors_exit_2(tmp_path):
    p = run()
    assert p.returncode == 2 and "the following arguments are required: FILE.inx" in p.stderr
    p = run(tmp_path / "missing.inx")
    assert p.returncode == 2 and f"{tmp_path / 'missing.inx'}: cannot read it: No such file or directory" in p.stderr
    p = run("--bogus", INX)
    assert p.returncode == 2 and "unrecognized arguments: --bogus" in p.stderr
