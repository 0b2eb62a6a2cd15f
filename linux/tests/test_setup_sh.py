"""emulator/setup.sh never deletes what the user gave it as VENV_DIR."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def setup(venv_dir):
    # PYTHON skips the Debian package step; any Python >= 3.10 will do
    return subprocess.run(["bash", os.path.join(ROOT, "emulator", "setup.sh"), str(venv_dir)],
                          env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True, timeout=120)


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
