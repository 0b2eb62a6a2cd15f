#!/usr/bin/env python3
"""Syntax check for the repository's PowerShell scripts and modules, runnable on Linux.

There is no PowerShell here (pwsh cannot be installed from the registries this
project may use), so the scripts are parsed with the tree-sitter PowerShell
grammar (PyPI: tree-sitter, tree-sitter-powershell; versions pinned in
scripts/requirements-ps1-check.txt). Every ERROR or MISSING node is reported as
file:line:column. One extra rule covers a real PowerShell parse error the
grammar accepts: "$name:" inside a double-quoted string ("at $Path: x"), which
PowerShell reads as a drive-qualified variable and rejects; write "${Path}:".

This is a grammar, not PowerShell's own parser: it catches unbalanced braces,
parentheses and quotes, broken statements and the like, not every error
PowerShell would report, and it does not run anything.

Usage: check-ps1-syntax.py [FILE_OR_DIR ...]   (default: the folder of this file)
Exit: 0 all files parse, 1 problems found, 2 nothing to check / bad usage.
"""

import os
import sys

try:
    import tree_sitter
    import tree_sitter_powershell
except ImportError as exc:  # pragma: no cover - reported to the user
    sys.stderr.write(
        "check-ps1-syntax: %s\n"
        "install the pinned parser first: pip install -r scripts/requirements-ps1-check.txt\n"
        "(windbg/test.sh does this in windbg/.venv)\n" % exc)
    sys.exit(2)

EXTENSIONS = (".ps1", ".psm1")  # scripts and script modules, picked from folders
EXPANDABLE = ("expandable_string_literal", "expandable_here_string_literal")


def parser():
    language = tree_sitter.Language(tree_sitter_powershell.language())
    return tree_sitter.Parser(language)


def collect_files(args):
    files = []
    for arg in args:
        if os.path.isdir(arg):
            for name in sorted(os.listdir(arg)):
                if name.lower().endswith(EXTENSIONS):
                    files.append(os.path.join(arg, name))
        elif os.path.isfile(arg):
            files.append(arg)
        else:
            sys.stderr.write("check-ps1-syntax: no such file or folder: %s\n" % arg)
            sys.exit(2)
    return files


def snippet(source, node):
    text = source[node.start_byte:node.end_byte].decode("utf-8", "replace")
    text = text.splitlines()[0] if text else ""
    return text[:40]


def problems_in(path, ps_parser):
    with open(path, "rb") as handle:
        source = handle.read()
    if source.startswith(b"\xef\xbb\xbf"):
        source = source[3:]
    tree = ps_parser.parse(source)
    found = []

    def visit(node, in_expandable):
        line, column = node.start_point[0] + 1, node.start_point[1] + 1
        if node.is_missing:
            found.append((line, column, "missing '%s'" % node.type))
        elif node.type == "ERROR":
            found.append((line, column, "syntax error near '%s'" % snippet(source, node)))
        elif in_expandable and node.type == "variable":
            text = source[node.start_byte:node.end_byte].decode("utf-8", "replace")
            after = source[node.end_byte:node.end_byte + 1]
            if after == b":" and ":" not in text and not text.startswith("${"):
                found.append((line, column,
                              "'%s:' in a double-quoted string is not valid PowerShell: write '${%s}:'"
                              % (text, text[1:])))
        inside = in_expandable or node.type in EXPANDABLE
        for child in node.children:
            visit(child, inside)

    visit(tree.root_node, False)
    # an ERROR may contain further ERRORs: keep the first per line
    seen = set()
    unique = []
    for item in sorted(found):
        if item[0] not in seen:
            seen.add(item[0])
            unique.append(item)
    return unique


def main(argv):
    targets = argv[1:] or [os.path.dirname(os.path.abspath(__file__))]
    files = collect_files(targets)
    if not files:
        sys.stderr.write("check-ps1-syntax: no .ps1 or .psm1 file in %s\n" % " ".join(targets))
        return 2
    ps_parser = parser()
    total = 0
    for path in files:
        problems = problems_in(path, ps_parser)
        total += len(problems)
        for line, column, message in problems:
            print("%s:%d:%d: %s" % (path, line, column, message))
    print("check-ps1-syntax: %d file(s), %d problem(s) (tree-sitter %s, tree-sitter-powershell %s)"
          % (len(files), total, version("tree-sitter"), version("tree-sitter-powershell")))
    return 1 if total else 0


def version(distribution):
    try:
        from importlib.metadata import version as dist_version
        return dist_version(distribution)
    except Exception:  # pragma: no cover
        return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
