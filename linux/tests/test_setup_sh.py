"""emulator/setup.sh and the parts of linux/env.sh every first run goes through: ensure_venv (one freshness
rule for every venv, nothing the user gave deleted) and ensure_debian_packages on Debian 12, 13 and elsewhere."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV_SH = os.path.join(ROOT, "linux", "env.sh")
# progress lines go to the caller's stderr here, not to an outer test.sh's
ENV = {k: v for k, v in os.environ.items() if k not in ("TESTDRIVER_PROGRESS_FD", "TESTDRIVER_PHASE_LOG")}


def setup(venv_dir):
    # PYTHON skips the Debian package step; any Python >= 3.10 will do
    return subprocess.run(["bash", os.path.join(ROOT, "emulator", "setup.sh"), str(venv_dir)],
                          env=dict(ENV, PYTHON=sys.executable), capture_output=True, text=True, timeout=120)


def env_sh(script, os_release=None, **env):
    """Runs SCRIPT after sourcing linux/env.sh (with ENV_SH_OS_RELEASE=os_release when given)."""
    e = dict(ENV, **env)
    if os_release is not None:
        e["ENV_SH_OS_RELEASE"] = str(os_release)
    return subprocess.run(["bash", "-c", f'source "{ENV_SH}"\n' + script], env=e, capture_output=True, text=True,
                          timeout=300)


def test_a_directory_that_is_not_a_venv_is_refused_and_kept(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    (tmp_path / "bin").mkdir()
    os.symlink(sys.executable, tmp_path / "bin" / "python")
    p = setup(tmp_path)
    assert p.returncode == 1 and p.stdout == ""
    assert "exists and is not a Python venv (no pyvenv.cfg)" in p.stderr
    assert sorted(os.listdir(tmp_path)) == ["bin", "keep.txt"] and (tmp_path / "keep.txt").read_text() == "mine"


def test_a_regular_file_is_refused_and_kept(tmp_path):
    f = tmp_path / "venv"
    f.write_text("mine")
    p = setup(f)
    assert p.returncode == 1 and "is not a Python venv" in p.stderr and f.read_text() == "mine"


def test_too_many_arguments(tmp_path):
    p = subprocess.run(["bash", os.path.join(ROOT, "emulator", "setup.sh"), "a", "b"], capture_output=True, text=True)
    assert p.returncode == 2 and "usage" in p.stderr and p.stdout == ""


def test_ensure_venv_installs_again_exactly_when_the_requirements_change(tmp_path):
    venv, req, inc = tmp_path / "venv", tmp_path / "req.txt", tmp_path / "inc.txt"
    inc.write_text("# nothing yet\n")
    req.write_text("-r inc.txt\n")

    def ensure():
        p = env_sh(f'ensure_venv "{venv}" "{req}"', PYTHON=sys.executable)
        assert p.returncode == 0, p.stderr
        return p.stderr

    assert "==> venv: pip install -r" in ensure()
    assert (venv / ".requirements.sha256").is_file()
    assert subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], capture_output=True).returncode == 0
    assert ensure() == "", "a current venv is left alone, silently"
    inc.write_text("# still nothing, but another file\n")
    assert "==> venv: pip install -r" in ensure(), "a change to an included file counts"
    assert ensure() == ""
    (venv / "mine.txt").write_text("kept")
    (venv / ".requirements.sha256").write_text("stale\n")
    assert "==> venv: pip install -r" in ensure() and (venv / "mine.txt").read_text() == "kept"


def test_ensure_venv_names_pips_log_when_pip_fails(tmp_path):
    req = tmp_path / "req.txt"
    req.write_text("--no-index\nno-such-package-testdriver==1.0\n")
    p = env_sh(f'ensure_venv "{tmp_path / "venv"}" "{req}"; echo "status $?"', PYTHON=sys.executable)
    assert p.stdout == "status 1\n"
    log = re.search(r"all of it: (\S+)\)", p.stderr)
    assert log and "no-such-package-testdriver" in open(log.group(1)).read(), p.stderr
    os.remove(log.group(1))


# A group whose one package is missing, and an apt-get that records its calls (a shell function comes first).
FAKE_APT = '''declare -A DEBIAN_PACKAGES_probe=([testdriver-probe]=/nonexistent/testdriver-probe)
apt-get() { echo "apt-get $*" >>"$CALLS"; [[ $1 == update ]]; }
sudo() { "$@"; }
ensure_debian_packages probe
'''


def os_release(tmp_path, **fields):
    f = tmp_path / "os-release"
    f.write_text("".join(f'{k}="{v}"\n' for k, v in fields.items()))
    return f


def test_an_unsupported_system_gets_one_line_and_nothing_is_installed(tmp_path):
    calls = tmp_path / "calls"
    for fields in ({"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_CODENAME": "noble", "PRETTY_NAME": "Ubuntu 24.04"},
                   {"ID": "debian", "VERSION_CODENAME": "bullseye", "PRETTY_NAME": "Debian GNU/Linux 11 (bullseye)"},
                   {"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux forky/sid"}):
        p = env_sh(FAKE_APT, os_release(tmp_path, **fields), CALLS=str(calls))
        assert p.returncode == 1 and not calls.exists(), "apt-get ran"
        lines = p.stderr.splitlines()
        assert len(lines) == 1, p.stderr
        assert fields["PRETTY_NAME"] in lines[0]
        assert "Debian 13 (trixie) or Debian 12 (bookworm), x86_64" in lines[0]
        assert lines[0].endswith("testdriver-probe")


def test_the_messages_name_the_suites_of_the_release_it_runs_on(tmp_path):
    for codename, version in (("trixie", 13), ("bookworm", 12)):
        calls = tmp_path / f"calls-{codename}"
        p = env_sh(FAKE_APT, os_release(tmp_path, ID="debian", VERSION_CODENAME=codename), CALLS=str(calls))
        assert p.returncode == 1
        assert calls.read_text().splitlines() == [
            "apt-get update -q",
            "apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-unsafe-io testdriver-probe"]
        assert f"installing Debian {version} packages (probe): testdriver-probe" in p.stderr
        assert (f"These packages come from Debian {version}'s suites {codename}, {codename}-updates and "
                f"{codename}-security") in p.stderr
        log = re.search(r"all of it: (\S+)\)", p.stderr).group(1)
        os.remove(log)
        hint = env_sh("_debian_too_old_hint rustc-web 1.85", os_release(tmp_path, ID="debian",
                                                                       VERSION_CODENAME=codename))
        assert f"Suites: {codename}-security" in hint.stdout and f"Debian {version} ships" in hint.stdout
        other = {"trixie": "bookworm", "bookworm": "trixie"}[codename]
        assert other not in p.stderr + hint.stdout


def test_no_package_is_proven_by_a_path_that_names_a_python_version():
    p = env_sh('for g in build python test wine fresh; do declare -n a=DEBIAN_PACKAGES_$g; '
               'printf "%s\\n" "${a[@]}"; unset -n a; done')
    proofs = p.stdout.split()
    assert proofs and not [x for x in proofs if re.search(r"python3\.\d+", x)]
    # and the python3 proof asks Debian's python3 itself
    q = env_sh('_debian_proof_holds python3:ensurepip && echo yes; _debian_proof_holds python3:no_such_mod || echo no')
    found = subprocess.run(["/usr/bin/python3", "-c", "import ensurepip"], capture_output=True).returncode == 0
    assert q.stdout == ("yes\n" if found else "") + "no\n"


def test_fresh_check_refuses_an_unknown_suite_before_anything():
    p = subprocess.run(["bash", os.path.join(ROOT, "linux", "fresh-check.sh"), "--suite", "sid"], env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.strip().endswith("--suite takes bookworm or trixie, not 'sid'"), p.stderr
