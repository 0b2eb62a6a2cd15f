"""mypy (pinned in requirements.txt, configured in pyproject.toml) finds nothing in emulator/."""
import os
import subprocess
import sys

EMU = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mypy_is_clean():
    p = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "--no-incremental"],
                       cwd=EMU, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Success: no issues found" in p.stdout
