#!/usr/bin/env python3
"""Runs the repository's PowerShell scripts, or one of their functions, against fakes.

No PowerShell runs on Linux here, so the scripts' tests read behaviour through this
small interpreter: it walks the tree-sitter PowerShell parse tree (the grammar pinned
in scripts/requirements-ps1-check.txt) and evaluates the subset of the language the
scripts use. Every command a script calls is either defined by the script or its
module (and run), or built in here (Write-Host, Join-Path, ForEach-Object, ...), or
answered by a fake the test declares; anything else stops the run with an
"unsupported" failure instead of guessing. It is at least as strict as PowerShell
under Set-StrictMode -Version 2.0 where the scripts rely on it: an unset variable or
a missing property is an error.

Input (stdin, JSON):
  {"script": "scripts/Remove-TestDriver.ps1",
   "run": {"parameters": {...}}              run the whole script, or
   "call": {"function": "Name", "arguments": {...}}   define the script's functions
                                             (not its top level) and call one,
   "modules": ["TestDriver.Common.psm1"],    with "call": modules (beside the script)
                                             whose functions are defined first,
   "env": {"COMPUTERNAME": "VM"},            $env: (case-insensitive)
   "whatIf": false,                          $PSCmdlet.ShouldProcess answers not whatIf
   "statics": {"[Environment]::Is64BitOperatingSystem": true},   static members read
   "fakes": [{"command": "sc.exe", "when": {"args": ["delete", "TestDrv"]},
              "exitCode": 1072, "output": ["..."], "env": ["NAME"]},
             {"command": "Get-CimInstance", "when": {"ClassName": "Win32_SystemDriver"},
              "output": [{"Name": "TestDrv", ...}], "times": 1},
             {"command": "Test-Path", "throw": "message"}]}
  A fake answers the first call it matches ("when": named arguments, or "args": the
  positional ones, compared case-insensitively); "times" limits how often.
  A fake with "exitCode" is a native program: it sets $LASTEXITCODE. "whenMatch": named
  arguments matched by a regular expression; "env": variables recorded with the call.

Output (stdout, JSON): {"calls": [{"command", "named", "positional"}], "host": [lines],
  "warnings": [...], "output": [values], "error": null or "message", "shouldProcess":
  [[target, action]], "files": {path: lines} ([IO.File]::WriteAllLines), "variables":
  {name: value} (the script scope at the end)}
pslite.py --inventory FILE...: what each file's parse tree holds, for the form checks
(see inventory()).
Exit: 0 the run ended (a PowerShell error is reported in "error"), 2 bad input,
3 the script used something this interpreter does not support (message on stderr).
"""

import json
import os
import re
import sys

import tree_sitter
import tree_sitter_powershell


class PSError(Exception):
    """A PowerShell terminating error (throw, or a failing cmdlet): try/catch sees it."""

    def __init__(self, message, record=None):
        super().__init__(message)
        self.message = message
        self.record = record


class Unsupported(Exception):
    """Something this interpreter does not model: never caught by the script."""


class Return(Exception):
    pass


class Break(Exception):
    pass


class Continue(Exception):
    pass


class PSObject:
    """A pscustomobject or hashtable: ordered, keys case-insensitive."""

    def __init__(self, items=None):
        self._keys = {}
        self._values = {}
        for key, value in (items or {}).items():
            self[key] = value

    def __contains__(self, key):
        return str(key).lower() in self._values

    def __getitem__(self, key):
        return self._values[str(key).lower()]

    def __setitem__(self, key, value):
        low = str(key).lower()
        self._keys.setdefault(low, str(key))
        self._values[low] = value

    def items(self):
        return [(self._keys[k], v) for k, v in self._values.items()]


class PSList(list):
    """System.Collections.Generic.List[T]: Add appends and returns nothing."""


class ScriptBlock:
    def __init__(self, node, scope):
        self.node = node
        self.scope = scope


class ErrorRecord:
    def __init__(self, message):
        self.message = message


class FakeCmdlet:
    """$PSCmdlet: ShouldProcess is answered by the scenario's whatIf and recorded."""

    def __init__(self, what_if):
        self.what_if = what_if


class Function:
    def __init__(self, name, node, source_file):
        self.name = name
        self.node = node
        self.file = source_file


WRAPPERS = {
    "pipeline_chain", "logical_expression", "bitwise_expression", "comparison_expression",
    "additive_expression", "multiplicative_expression", "format_expression", "range_expression",
    "array_literal_expression", "unary_expression", "left_assignment_expression", "string_literal",
    "integer_literal", "argument_expression", "logical_argument_expression", "bitwise_argument_expression",
    "comparison_argument_expression", "additive_argument_expression", "multiplicative_argument_expression",
    "format_argument_expression", "range_argument_expression", "key_expression", "pipeline",
    "command_name_expr", "path_command_name", "expression_with_unary_operator",
}
BINARY = {
    "logical_expression", "bitwise_expression", "comparison_expression", "additive_expression",
    "multiplicative_expression", "format_expression", "range_expression", "logical_argument_expression",
    "bitwise_argument_expression", "comparison_argument_expression", "additive_argument_expression",
    "multiplicative_argument_expression", "format_argument_expression", "range_argument_expression",
}
COMMON_PARAMETERS = {"erroraction", "warningaction", "verbose", "debug", "errorvariable", "outvariable",
                     "whatif", "confirm", "informationaction"}
SWITCHES = {"nonewline", "force", "recurse", "file", "directory", "leaf", "parent", "descending",
            "includelivedump", "excludeoperationallog", "excludediagnosticlog", "unique", "asjob", "simplematch"}


def named(node):
    return [c for c in node.children if c.is_named and c.type != "comment"]


def unwrap(node):
    while node.type in WRAPPERS and len(named(node)) == 1 and (
            len(node.children) == 1 or node.type in ("pipeline", "pipeline_chain", "key_expression")):
        node = named(node)[0]
    return node


def to_str(value):
    if value is None:
        return ""
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, list):
        return " ".join(to_str(v) for v in value)
    if isinstance(value, PSObject):
        return "@{" + "; ".join("%s=%s" % (k, to_str(v)) for k, v in value.items()) + "}"
    if isinstance(value, ErrorRecord):
        return value.message
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def truthy(value):
    if value is None:
        return False
    if isinstance(value, (bool, int, float)):
        return value != 0
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        return len(value) > 1 or (len(value) == 1 and truthy(value[0]))
    return True


def to_number(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if value is None:
        return 0
    text = to_str(value).strip()
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise PSError("Cannot convert value \"%s\" to type \"System.Int32\"." % text)


def to_json(value):
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, PSObject):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, ErrorRecord):
        return value.message
    return "<%s>" % type(value).__name__


def from_json(value):
    if isinstance(value, dict):
        return PSObject({k: from_json(v) for k, v in value.items()})
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def dotnet_regex(pattern):
    """.NET inline options may stand anywhere ("^(?i)x"); Python wants them first."""
    flags = re.IGNORECASE

    def take(match):
        nonlocal flags
        for ch in match.group(1):
            flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}[ch]
        return ""

    return re.compile(re.sub(r"\(\?([imsx]+)\)", take, pattern), flags)


def same(expected, actual):
    if isinstance(expected, list):
        actual = actual if isinstance(actual, list) else [actual]
        return len(expected) == len(actual) and all(same(e, a) for e, a in zip(expected, actual))
    if isinstance(expected, str):
        return isinstance(actual, (str, int, float)) and expected.lower() == to_str(actual).lower()
    return expected == actual


class Scope:
    def __init__(self, parent=None):
        self.vars = {}
        self.parent = parent

    def find(self, name):
        scope = self
        while scope is not None:
            if name in scope.vars:
                return scope
            scope = scope.parent
        return None


class Interpreter:
    def __init__(self, scenario):
        self.parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
        self.fakes = [dict(f) for f in scenario.get("fakes", [])]
        self.statics = {k.replace("[", "").replace("]", "").lower(): from_json(v)
                        for k, v in scenario.get("statics", {}).items()}
        self.env = {k.lower(): v for k, v in scenario.get("env", {}).items()}
        self.calls = []
        self.host = []
        self.warnings = []
        self.should_process = []
        self.functions = {}
        self.global_scope = Scope()
        self.global_scope.vars.update({"true": True, "false": False, "null": None, "lastexitcode": None,
                                       "erroractionpreference": "Continue"})
        self.script_scope = Scope(self.global_scope)
        self.cmdlet = FakeCmdlet(bool(scenario.get("whatIf")))
        self.files = {}

    # --- parsing -------------------------------------------------------------------
    def parse(self, path):
        with open(path, "rb") as handle:
            source = handle.read()
        if source.startswith(b"\xef\xbb\xbf"):
            source = source[3:]
        tree = self.parser.parse(source)
        return tree.root_node

    def fail(self, node, what):
        raise Unsupported("%s at line %d: %s" % (what, node.start_point[0] + 1,
                                                  node.text.decode("utf-8", "replace")[:80]))

    def text(self, node):
        return node.text.decode("utf-8")

    # --- variables -----------------------------------------------------------------
    def split_name(self, raw):
        name = raw.lstrip("$@")
        if name.startswith("{") and name.endswith("}"):
            name = name[1:-1]
        prefix = None
        if ":" in name:
            prefix, name = name.split(":", 1)
            prefix = prefix.lower()
        return prefix, name

    def get_var(self, raw, scope, node):
        prefix, name = self.split_name(raw)
        low = name.lower()
        if prefix == "env":
            return self.env.get(low)
        if prefix == "global":
            scope = self.global_scope
        elif prefix == "script":
            scope = self.script_scope
        elif prefix is not None:
            self.fail(node, "variable drive %s:" % prefix)
        found = scope.find(low)
        if found is None:
            raise PSError("The variable '$%s' cannot be retrieved because it has not been set." % name)
        value = found.vars[low]
        return None if value is AUTOMATION_NULL else value

    def holds_nothing(self, node, scope):
        """A variable assigned from a command that wrote nothing: @() and foreach see no element."""
        node = unwrap(node)
        if node.type not in ("variable", "braced_variable"):
            return False
        prefix, name = self.split_name(self.text(node))
        if prefix is not None:
            return False
        found = scope.find(name.lower())
        return found is not None and found.vars[name.lower()] is AUTOMATION_NULL

    def set_var(self, raw, value, scope):
        prefix, name = self.split_name(raw)
        low = name.lower()
        if prefix == "env":
            self.env[low] = to_str(value)
            return
        if prefix == "global":
            scope = self.global_scope
        elif prefix == "script":
            scope = self.script_scope
        scope.vars[low] = value

    # --- statements ----------------------------------------------------------------
    def run_block(self, node, scope, out):
        for child in named(node):
            self.statement(child, scope, out)

    def statement(self, node, scope, out):
        kind = node.type
        if kind in ("statement_list", "statement_block", "script_block", "script_block_body"):
            self.run_block(node, scope, out)
        elif kind == "function_statement":
            name = self.text(node.child_by_field_name("name") or [c for c in node.children
                                                                 if c.type == "function_name"][0])
            self.functions[name.lower()] = Function(name, node, None)
        elif kind == "param_block":
            pass
        elif kind == "if_statement":
            self.if_statement(node, scope, out)
        elif kind == "foreach_statement":
            self.foreach_statement(node, scope, out)
        elif kind == "switch_statement":
            self.switch_statement(node, scope, out)
        elif kind == "try_statement":
            self.try_statement(node, scope, out)
        elif kind == "flow_control_statement":
            self.flow(node, scope, out)
        elif kind == "assignment_expression":
            self.assign(node, scope)
        elif kind == "pipeline" and named(node) and named(node)[0].type == "assignment_expression":
            self.assign(named(node)[0], scope)
        else:
            for value in self.pipeline(node, scope):
                out.append(value)

    def if_statement(self, node, scope, out):
        parts = named(node)
        if truthy(self.value(parts[0], scope)):
            self.run_block(parts[1], scope, out)
            return
        for part in parts[2:]:
            clauses = named(part) if part.type == "elseif_clauses" else [part]
            for clause in clauses:
                if clause.type == "elseif_clause":
                    cond, block = named(clause)
                    if truthy(self.value(cond, scope)):
                        self.run_block(block, scope, out)
                        return
                elif clause.type == "else_clause":
                    self.run_block(named(clause)[0], scope, out)
                    return

    def foreach_statement(self, node, scope, out):
        parts = named(node)
        variable, source, block = parts[0], parts[1], parts[-1]
        items = None if self.holds_nothing(source, scope) else self.value(source, scope)
        items = [] if items is None else (items if isinstance(items, list) else [items])
        for item in list(items):
            self.set_var(self.text(variable), item, scope)
            try:
                self.run_block(block, scope, out)
            except Continue:
                continue
            except Break:
                break

    def switch_statement(self, node, scope, out):
        condition = [c for c in node.children if c.type == "switch_condition"][0]
        value = self.value(named(condition)[0], scope)
        body = [c for c in node.children if c.type == "switch_body"][0]
        clauses = [c for c in named(body)[0].children if c.type == "switch_clause"] if named(body) else []
        values = value if isinstance(value, list) else [value]
        try:
            for item in values:
                matched = False
                default = None
                for clause in clauses:
                    cond, block = named(clause)[0], named(clause)[-1]
                    if cond.type == "switch_clause_condition" and self.text(cond).lower() == "default":
                        default = block
                        continue
                    if cond.type == "switch_clause_condition" and named(cond):
                        cond = named(cond)[0]
                    if cond.type in ("simple_name", "generic_token"):
                        expected = self.text(cond)
                    else:
                        expected = self.value(cond, scope)
                    if self.compare("-eq", item, expected):
                        matched = True
                        self.run_block(block, scope, out)
                if not matched and default is not None:
                    self.run_block(default, scope, out)
        except Break:
            pass

    def try_statement(self, node, scope, out):
        parts = named(node)
        block = parts[0]
        catches = []
        final = None
        for part in parts[1:]:
            if part.type == "catch_clauses":
                catches.extend(c for c in named(part) if c.type == "catch_clause")
            elif part.type == "catch_clause":
                catches.append(part)
            elif part.type == "finally_clause":
                final = named(part)[-1]
        try:
            self.run_block(block, scope, out)
        except PSError as error:
            if not catches:
                raise
            catch_scope = scope
            previous = scope.vars.get("_")
            scope.vars["_"] = error.record or ErrorRecord(error.message)
            try:
                self.run_block(named(catches[0])[-1], catch_scope, out)
            finally:
                scope.vars["_"] = previous
        finally:
            if final is not None:
                self.run_block(final, scope, out)

    def flow(self, node, scope, out):
        keyword = node.children[0].type.lower()
        rest = named(node)
        if keyword == "return":
            if rest:
                out.extend(self.pipeline(rest[0], scope))
            raise Return()
        if keyword == "throw":
            value = self.value(rest[0], scope) if rest else "ScriptHalted"
            if isinstance(value, ErrorRecord):
                raise PSError(value.message, value)
            raise PSError(to_str(value))
        if keyword == "break":
            raise Break()
        if keyword == "continue":
            raise Continue()
        self.fail(node, "flow control '%s'" % keyword)

    def assign(self, node, scope):
        parts = named(node)
        target, operator, source = unwrap(parts[0]), self.text(parts[1]).strip(), parts[2]
        value = self.value(source, scope)
        if value is None and operator == "=" and any(self.is_command(e) for e in self.elements(source)):
            value = AUTOMATION_NULL
        if operator != "=":
            current = self.expr(target, scope)
            op = {"+=": "+", "-=": "-"}.get(operator)
            if op is None:
                self.fail(node, "assignment operator " + operator)
            value = self.arith(op, current, value)
        if target.type in ("variable", "braced_variable"):
            self.set_var(self.text(target), value, scope)
        elif target.type == "member_access":
            obj = self.expr(named(target)[0], scope)
            name = self.text(named(target)[-1])
            if not isinstance(obj, PSObject):
                self.fail(node, "property assignment on a non-object")
            obj[name] = value
        elif target.type == "element_access":
            obj = self.expr(named(target)[0], scope)
            key = self.expr(named(target)[1], scope)
            if isinstance(obj, PSObject):
                obj[to_str(key)] = value
            elif isinstance(obj, list):
                obj[int(to_number(key))] = value
            else:
                self.fail(node, "element assignment")
        else:
            self.fail(node, "assignment target " + target.type)

    # --- pipelines -----------------------------------------------------------------
    def elements(self, node):
        node = unwrap(node) if node.type == "pipeline" else node
        if node.type == "pipeline_chain":
            return [c for c in node.children if c.is_named and c.type != "comment"]
        return [node]

    def is_command(self, node):
        node = unwrap(node)
        return node.type in ("command", "command_name")

    def pipeline(self, node, scope):
        """Runs a pipeline; returns its output, enumerated."""
        elements = self.elements(node)
        data = None
        for index, element in enumerate(elements):
            if self.is_command(element):
                data = self.command(unwrap(element), scope, data)
            elif self.holds_nothing(element, scope):
                data = []
            else:
                if index > 0:
                    self.fail(element, "expression after a pipe")
                value = self.expr(unwrap(element), scope, statement=True)
                if value is VOID:
                    data = []
                else:
                    data = list(value) if isinstance(value, list) else [value]
        return data or []

    def value(self, node, scope):
        """The value of a pipeline used as an expression (right of =, conditions, arguments)."""
        elements = self.elements(node)
        if len(elements) == 1 and not self.is_command(elements[0]):
            value = self.expr(unwrap(elements[0]), scope)
            return None if value is VOID else value
        return collapse(self.pipeline(node, scope))

    # --- expressions ---------------------------------------------------------------
    def expr(self, node, scope, statement=False):
        node = unwrap(node)
        kind = node.type
        if kind in ("variable", "braced_variable"):
            return self.get_var(self.text(node), scope, node)
        if kind == "decimal_integer_literal":
            return int(self.text(node).rstrip("lL"))
        if kind == "hexadecimal_integer_literal":
            return int(self.text(node), 16)
        if kind == "real_literal":
            return float(self.text(node))
        if kind == "verbatim_string_characters":
            raw = self.text(node)
            if raw.startswith("@'"):
                return raw[2:-2].strip("\r\n").replace("\r\n", "\n")
            return raw[1:-1].replace("''", "'")
        if kind in ("expandable_string_literal", "expandable_here_string_literal"):
            return self.expand(node, scope)
        if kind == "generic_token":
            return self.text(node)
        if kind == "parenthesized_expression":
            return self.value(named(node)[0], scope)
        if kind == "sub_expression":
            out = []
            for child in named(node):
                self.statement(child, scope, out)
            return collapse(out)
        if kind == "array_expression":
            out = []
            for child in named(node):
                self.statement(child, scope, out)
            return out
        if kind == "array_literal_expression":
            return [self.expr(c, scope) for c in named(node)]
        if kind == "hash_literal_expression":
            result = PSObject()
            body = named(node)
            for entry in (named(body[0]) if body else []):
                key_node, value_node = named(entry)[0], named(entry)[-1]
                key_node = unwrap(key_node)
                key = self.text(key_node) if key_node.type == "simple_name" else to_str(self.expr(key_node, scope))
                result[key] = self.value(value_node, scope)
            return result
        if kind == "script_block_expression":
            return ScriptBlock(node, scope)
        if kind in BINARY:
            return self.binary(node, scope)
        if kind == "expression_with_unary_operator":
            operator = self.text(node.children[0]).lower()
            operand = self.expr(named(node)[-1], scope)
            if operator in ("-not", "!"):
                return not truthy(operand)
            if operator == "-":
                return -to_number(operand)
            if operator == ",":
                return [operand]
            self.fail(node, "unary operator " + operator)
        if kind == "cast_expression":
            return self.cast(named(node)[0], self.expr(named(node)[-1], scope), node, statement)
        if kind == "member_access":
            if any(c.type == "::" for c in node.children):
                key = self.text(named(node)[0]).strip("[]").lower() + "::" + self.text(named(node)[-1]).lower()
                if key not in self.statics:
                    self.fail(node, "static member %s (give it in the scenario's statics)" % key)
                return self.statics[key]
            return self.member(self.expr(named(node)[0], scope), self.text(named(node)[-1]), node)
        if kind == "element_access":
            return self.index(self.expr(named(node)[0], scope), self.expr(named(node)[1], scope))
        if kind == "invokation_expression":
            return self.invoke(node, scope)
        if kind in ("command", "command_name"):
            return collapse(self.command(node, scope, None))
        self.fail(node, "expression " + kind)

    def expand(self, node, scope):
        raw = node.text
        start = node.start_byte
        inner_start, inner_end = (3, len(raw) - 3) if raw.startswith(b'@"') else (1, len(raw) - 1)
        pieces = []
        position = inner_start
        for child in named(node):
            begin, end = child.start_byte - start, child.end_byte - start
            pieces.append(unescape(raw[position:begin].decode("utf-8")))
            if child.type == "sub_expression":
                pieces.append(to_str(self.expr(child, scope)))
            elif child.type in ("variable", "braced_variable"):
                pieces.append(to_str(self.get_var(child.text.decode("utf-8"), scope, child)))
            else:
                self.fail(child, "inside a string: " + child.type)
            position = end
        pieces.append(unescape(raw[position:inner_end].decode("utf-8")))
        text = "".join(pieces)
        if raw.startswith(b'@"'):
            text = text.strip("\r\n").replace("\r\n", "\n")
        return text

    def binary(self, node, scope):
        children = [c for c in node.children if c.type != "comment"]
        result = self.expr(children[0], scope)
        i = 1
        while i < len(children):
            operator_node = children[i]
            operator = self.text(operator_node).strip().lower()
            right_node = children[i + 1]
            if operator in ("-and", "-or"):
                if operator == "-and" and not truthy(result):
                    result = False
                elif operator == "-or" and truthy(result):
                    result = True
                else:
                    result = truthy(self.expr(right_node, scope))
            else:
                right = self.expr(right_node, scope)
                if operator in ("+", "-", "*", "/", "%"):
                    result = self.arith(operator, result, right)
                elif operator == "-f":
                    result = dotnet_format(to_str(result), right if isinstance(right, list) else [right])
                elif operator == "-join":
                    result = to_str(right).join(to_str(v) for v in (result if isinstance(result, list) else [result]))
                elif operator == "-split":
                    result = dotnet_regex(to_str(right)).split(to_str(result))
                elif operator in ("-replace", "-ireplace"):
                    pattern, replacement = (right + [""])[:2] if isinstance(right, list) else (right, "")
                    result = dotnet_regex(to_str(pattern)).sub(
                        to_str(replacement).replace("$", "\\"), to_str(result))
                elif operator == "..":
                    a, b = int(to_number(result)), int(to_number(right))
                    result = list(range(a, b + 1)) if a <= b else list(range(a, b - 1, -1))
                else:
                    result = self.compare(operator, result, right, scope)
            i += 2
        return result

    def arith(self, operator, left, right):
        if operator == "+":
            if isinstance(left, list):
                return left + (right if isinstance(right, list) else [right])
            if isinstance(left, str):
                return left + to_str(right)
            if left is None:
                return right
            return to_number(left) + to_number(right)
        a, b = to_number(left), to_number(right)
        if operator == "-":
            return a - b
        if operator == "*":
            return a * b
        if operator == "/":
            return a / b if a % b else a // b
        return a % b

    def compare(self, operator, left, right, scope=None):
        case = operator.startswith("-c")
        op = operator.lstrip("-")
        if op[0] in "ic" and op[1:] in ("eq", "ne", "gt", "ge", "lt", "le", "like", "notlike", "match",
                                          "notmatch", "contains", "notcontains", "in", "notin"):
            op = op[1:]
        if op in ("contains", "notcontains"):
            items = left if isinstance(left, list) else [left]
            found = any(self.compare("-ceq" if case else "-eq", item, right) for item in items)
            return found if op == "contains" else not found
        if op in ("in", "notin"):
            return self.compare("-" + ("c" if case else "") + ("contains" if op == "in" else "notcontains"),
                                right, left)
        if isinstance(left, list):
            return [item for item in left if self.compare(operator, item, right, scope)]
        if op in ("match", "notmatch"):
            match = dotnet_regex(to_str(right)).search(to_str(left)) if not case else \
                re.compile(to_str(right)).search(to_str(left))
            if match and op == "match" and scope is not None:
                groups = PSObject({"0": match.group(0)})
                for i, g in enumerate(match.groups(), 1):
                    if g is not None:
                        groups[str(i)] = g
                for name, g in match.groupdict().items():
                    if g is not None:
                        groups[name] = g
                scope.vars["matches"] = groups
            return bool(match) if op == "match" else not match
        if op in ("like", "notlike"):
            pattern = "^" + re.escape(to_str(right)).replace("\\*", ".*").replace("\\?", ".") + "$"
            hit = re.match(pattern, to_str(left), 0 if case else re.IGNORECASE) is not None
            return hit if op == "like" else not hit
        if left is None or right is None:
            equal = left is None and right is None
            if op == "eq":
                return equal
            if op == "ne":
                return not equal
        if isinstance(left, bool):
            a, b = left, truthy(right)
        elif isinstance(left, (int, float)):
            try:
                a, b = left, to_number(right)
            except PSError:
                return op == "ne"
        elif isinstance(left, str):
            a, b = (left, to_str(right)) if case else (left.lower(), to_str(right).lower())
        else:
            a, b = left, right
            if op not in ("eq", "ne"):
                raise Unsupported("ordering of %s" % type(left).__name__)
        return {"eq": a == b, "ne": a != b, "gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]

    def cast(self, type_node, value, node, statement):
        name = self.text(type_node).strip("[]").lower()
        if name == "void":
            return VOID if statement else None
        if name in ("string",):
            return to_str(value)
        if name in ("int", "int32", "uint32", "long", "int64"):
            return int(to_number(value))
        if name in ("bool", "switch"):
            return truthy(value)
        if name in ("pscustomobject", "ordered", "hashtable"):
            if not isinstance(value, PSObject):
                self.fail(node, "cast of a non-hashtable to " + name)
            return PSObject(dict(value.items()))
        if name in ("string[]", "array", "object[]"):
            items = [] if value is None else (value if isinstance(value, list) else [value])
            return [to_str(v) for v in items] if name == "string[]" else list(items)
        self.fail(node, "cast to [%s]" % name)

    def member(self, obj, name, node):
        low = name.lower()
        if isinstance(obj, PSObject):
            if low in obj:
                return obj[low]
            if low == "count":
                return len(obj.items())
        elif isinstance(obj, list):
            if low in ("count", "length"):
                return len(obj)
            return [self.member(item, name, node) for item in obj]
        elif isinstance(obj, str):
            if low == "length":
                return len(obj)
        elif isinstance(obj, ErrorRecord):
            if low == "exception":
                return PSObject({"Message": obj.message})
        raise PSError("The property '%s' cannot be found on this object. Verify that the property exists." % name)

    def index(self, obj, key):
        if isinstance(obj, list):
            i = int(to_number(key))
            return obj[i] if -len(obj) <= i < len(obj) else None
        if isinstance(obj, PSObject):
            k = to_str(key)
            return obj[k] if k in obj else None
        if isinstance(obj, str):
            i = int(to_number(key))
            return obj[i] if -len(obj) <= i < len(obj) else None
        if obj is None:
            raise PSError("Cannot index into a null array.")
        raise Unsupported("indexing a %s" % type(obj).__name__)

    def invoke(self, node, scope):
        parts = named(node)
        target, method = parts[0], self.text(parts[1]).lower()
        args = []
        if len(parts) > 2:
            for arg in named(parts[2]):
                if arg.type == "argument_expression_list":
                    args.extend(self.expr(a, scope) for a in named(arg))
                else:
                    args.append(self.expr(arg, scope))
        static = any(c.type == "::" for c in node.children)
        if static:
            type_name = self.text(target).strip("[]").lower()
            if type_name in ("string", "system.string") and method in ("isnullorwhitespace", "isnullorempty"):
                text = to_str(args[0])
                return text.strip() == "" if method == "isnullorwhitespace" else text == ""
            if type_name in ("io.file", "system.io.file") and method == "writealllines":
                self.files[to_str(args[0])] = [to_str(line) for line in args[1]]
                self.record("[IO.File]::WriteAllLines", {}, [to_str(args[0])])
                return VOID
            if type_name in ("math", "system.math") and method == "round":
                return round(to_number(args[0]), int(to_number(args[1])) if len(args) > 1 else 0)
            if type_name in ("string", "system.string") and method == "join":
                items = args[1] if isinstance(args[1], list) else args[1:]
                return to_str(args[0]).join(to_str(v) for v in items)
            self.fail(node, "static method [%s]::%s" % (type_name, method))
        obj = self.expr(target, scope)
        if isinstance(obj, FakeCmdlet) and method == "shouldprocess":
            self.should_process.append([to_str(a) for a in args])
            if obj.what_if:
                self.host.append('What if: Performing the operation "%s" on target "%s".' % (
                    to_str(args[-1]), to_str(args[0])))
            return not obj.what_if
        if isinstance(obj, str):
            return string_method(obj, method, args, lambda what: self.fail(node, what))
        if isinstance(obj, PSList) and method == "add":
            obj.append(args[0])
            return VOID
        if isinstance(obj, list) and method == "toarray":
            return list(obj)
        if isinstance(obj, list) and method == "contains":
            return any(self.compare("-ceq", item, args[0]) for item in obj)
        if obj is None:
            raise PSError("You cannot call a method on a null-valued expression.")
        self.fail(node, "method %s on %s" % (method, type(obj).__name__))

    # --- commands ------------------------------------------------------------------
    def command(self, node, scope, pipeline_input):
        children = [c for c in node.children if c.type != "comment"]
        if children[0].type == "command_invokation_operator":
            if self.text(children[0]) != "&":
                self.fail(node, "dot-sourcing")
            target = children[1]
            while target.type in ("command_name", "path_command_name") and named(target):
                target = named(target)[0]
            if target.type in ("command_name", "path_command_name") and self.text(target).startswith("$"):
                name = to_str(self.get_var(self.text(target), scope, target))
            else:
                name = to_str(self.expr(target, scope))
            rest = children[2:]
        else:
            name = self.text(children[0])
            rest = children[1:]
            bounds = re.match(r"^(-?\d+)\.\.(-?\d+)$", name)
            if bounds and not rest:
                # the grammar reads "foreach ($i in 1..10)"'s range as a command name
                a, b = int(bounds.group(1)), int(bounds.group(2))
                return list(range(a, b + 1)) if a <= b else list(range(a, b - 1, -1))
        named_args, positional = self.arguments(rest, scope, name)
        return self.call(name, named_args, positional, pipeline_input, scope, node)

    def arguments(self, rest, scope, command_name):
        elements = []
        for child in rest:
            if child.type == "command_elements":
                elements.extend(c for c in child.children if c.type != "comment")
            else:
                elements.append(child)
        switches = self.switch_names(command_name)
        named_args, positional = {}, []
        pending = None
        colon = False
        for element in elements:
            element = unwrap(element)
            kind = element.type
            if kind == "command_argument_sep":
                colon = colon or self.text(element).strip() == ":"
                continue
            if kind in ("merging_redirection_operator", "redirection"):
                continue
            if kind == "command_parameter":
                if pending is not None:
                    named_args[pending] = True
                text = self.text(element)[1:]
                colon = False
                if text.endswith(":"):
                    text, colon = text[:-1], True
                pending = text
                continue
            if pending is not None and pending.lower() in switches and not colon:
                # "-Force $x": a switch takes no value; $x is positional
                named_args[pending] = True
                pending = None
            if kind == "variable" and self.text(element).startswith("@"):
                splat = self.get_var(self.text(element), scope, element)
                if isinstance(splat, PSObject):
                    named_args.update(dict(splat.items()))
                else:
                    positional.extend(splat if isinstance(splat, list) else [splat])
                continue
            value = self.expr(element, scope)
            if value is VOID:
                value = None
            if pending is not None:
                named_args[pending] = value
                pending = None
            else:
                positional.append(value)
            colon = False
        if pending is not None:
            named_args[pending] = True
        return named_args, positional

    def switch_names(self, command_name):
        function = self.functions.get(command_name.lower())
        if function is None:
            return SWITCHES  # the cmdlets' switches the scripts use
        return {p["name"].lower() for p in self.params_of(function.node) if p["type"] == "switch"}

    def record(self, name, named_args, positional):
        self.calls.append({"command": name, "named": {k: to_json(v) for k, v in named_args.items()},
                           "positional": to_json(positional)})

    def call(self, name, named_args, positional, pipeline_input, scope, node):
        low = name.lower()
        for fake in self.fakes:
            if fake["command"].lower() != low or fake.get("times") == 0:
                continue
            when = fake.get("when", {})
            lowered = {k.lower(): v for k, v in named_args.items()}
            if all((k == "args" and same(v, positional)) or
                   (k != "args" and k.lower() in lowered and same(v, lowered[k.lower()])) for k, v in when.items()) and \
                    all(k.lower() in lowered and re.search(v, to_str(lowered[k.lower()]), re.IGNORECASE)
                        for k, v in fake.get("whenMatch", {}).items()):
                if "times" in fake:
                    fake["times"] -= 1
                self.record(name, named_args, positional)
                if "env" in fake:
                    self.calls[-1]["env"] = {v: self.env.get(v.lower()) for v in fake["env"]}
                if "throw" in fake:
                    raise PSError(fake["throw"])
                if "exitCode" in fake:
                    self.global_scope.vars["lastexitcode"] = fake["exitCode"]
                return [from_json(v) for v in fake.get("output", [])]
        function = self.functions.get(low)
        if function is not None:
            self.record(name, named_args, positional)
            bound = {k: v for k, v in named_args.items() if k.lower() not in COMMON_PARAMETERS}
            return self.call_function(function, bound, positional, pipeline_input)
        builtin = BUILTINS.get(low)
        if builtin is not None:
            return builtin(self, named_args, positional, pipeline_input, scope, node)
        raise Unsupported("command '%s' (line %d) is not defined, not built in here and not faked "
                          "(named %s, positional %s)" % (name, node.start_point[0] + 1,
                                                          json.dumps(to_json(named_args)),
                                                          json.dumps(to_json(positional))))

    def params_of(self, function_node):
        body = [c for c in function_node.children if c.type == "script_block"]
        block = body[0] if body else function_node
        param_block = [c for c in block.children if c.type == "param_block"]
        return self.read_params(param_block[0]) if param_block else []

    def read_params(self, param_block):
        params = []
        lists = [c for c in param_block.children if c.type == "parameter_list"]
        for p in (named(lists[0]) if lists else []):
            if p.type != "script_parameter":
                continue
            info = {"name": None, "type": None, "default": None, "mandatory": False, "pattern": None,
                    "set": None, "range": None, "allow_empty": False, "parameter_set": None}
            stack = list(p.children)
            while stack:
                c = stack.pop(0)
                if c.type == "attribute_list":
                    stack = list(c.children) + stack
                elif c.type == "type_literal":
                    info["type"] = self.text(c).strip("[]").lower()
                elif c.type == "attribute":
                    self.read_attribute(c, info)
                elif c.type == "variable":
                    info["name"] = self.text(c)[1:]
                elif c.type == "script_parameter_default":
                    info["default"] = named(c)[0]
            params.append(info)
        return params

    def read_attribute(self, node, info):
        text = self.text(node)
        name = re.match(r"\[\s*([A-Za-z.]+(\[\])?)", text).group(1).lower()
        if "(" not in text:
            info["type"] = name
            return
        args = [c for c in node.children if c.type == "attribute_arguments"]
        values = []
        if args:
            for a in named(args[0]):
                inner = named(a)
                if inner and unwrap(inner[0]).type == "simple_name" and len(inner) == 1:
                    values.append(("flag", self.text(inner[0])))
                elif a.type == "attribute_argument" and any(ch.type == "=" for ch in a.children):
                    values.append(("named", self.text(inner[0]), self.expr(inner[-1], self.global_scope)))
                else:
                    values.append(("value", self.expr(inner[-1] if inner else a, self.global_scope)))
        if name == "parameter":
            for v in values:
                if v[0] == "named" and v[1].lower() == "parametersetname":
                    info["parameter_set"] = to_str(v[2])
            info["mandatory"] = any(v[0] == "flag" and v[1].lower() == "mandatory" or
                                    v[0] == "named" and v[1].lower() == "mandatory" and truthy(v[2])
                                    for v in values)
        elif name == "validatepattern":
            info["pattern"] = to_str(values[0][-1])
        elif name == "validateset":
            info["set"] = [to_str(v[-1]) for v in values]
        elif name == "validaterange":
            bounds = values[0][-1] if len(values) == 1 else [v[-1] for v in values]
            info["range"] = (to_number(bounds[0]), to_number(bounds[1]))
        elif name == "allowemptystring":
            info["allow_empty"] = True

    def bind(self, params, named_args, positional, scope, label):
        given = {}
        for key, value in named_args.items():
            hits = [p for p in params if p["name"].lower() == key.lower()] or \
                [p for p in params if p["name"].lower().startswith(key.lower())]
            if len(hits) != 1:
                raise PSError("%s: A parameter cannot be found that matches parameter name '%s'." % (label, key))
            given[hits[0]["name"]] = value
        free = [p for p in params if p["name"] not in given and p["type"] != "switch"]
        if len(positional) > len(free):
            raise PSError("%s: A positional parameter cannot be found that accepts argument '%s'." % (
                label, to_str(positional[len(free)])))
        for p, value in zip(free, positional):
            given[p["name"]] = value
        # the parameter set in use: the one named by a parameter given (no set model beyond that)
        chosen = next((p["parameter_set"] for p in params if p["name"] in given and p["parameter_set"]), None)
        for p in params:
            name = p["name"]
            if name in given:
                value = self.convert(given[name], p["type"], label, name)
                if p["mandatory"] and (value is None or value == "") and not p["allow_empty"]:
                    raise PSError("%s: Cannot bind argument to parameter '%s' because it is an empty string." %
                                  (label, name))
                if p["pattern"] is not None:
                    for item in (value if isinstance(value, list) else [value]):
                        if not dotnet_regex(p["pattern"]).search(to_str(item)):
                            raise PSError("%s: Cannot validate argument on parameter '%s'. The argument \"%s\" "
                                          "does not match the \"%s\" pattern." % (label, name, to_str(item),
                                                                                  p["pattern"]))
                if p["set"] is not None and to_str(value).lower() not in [s.lower() for s in p["set"]]:
                    raise PSError("%s: Cannot validate argument on parameter '%s'. The argument \"%s\" does not "
                                  "belong to the set \"%s\"." % (label, name, to_str(value), ",".join(p["set"])))
                if p["range"] is not None and not p["range"][0] <= to_number(value) <= p["range"][1]:
                    raise PSError("%s: Cannot validate argument on parameter '%s'." % (label, name))
            elif p["mandatory"] and (p["parameter_set"] is None or p["parameter_set"] == chosen):
                raise PSError("%s: Cannot process command because of one or more missing mandatory parameters: %s."
                              % (label, name))
            elif p["default"] is not None:
                value = self.convert(self.value(p["default"], scope), p["type"], label, name)
            else:
                value = self.convert(None, p["type"], label, name)
            scope.vars[name.lower()] = value

    def convert(self, value, type_name, label, name):
        if type_name is None or type_name in ("object", "psobject") or "." in type_name:
            return value  # objects (PSCmdlet, IO.FileInfo, ...) are passed as they are
        if type_name == "switch" or type_name == "bool":
            return truthy(value)
        if type_name == "string":
            return to_str(value)
        if type_name in ("int", "int32", "uint32", "long"):
            return int(to_number(value))
        if type_name == "string[]":
            items = [] if value is None else (value if isinstance(value, list) else [value])
            return [to_str(v) for v in items]
        raise Unsupported("%s: parameter %s of type [%s]" % (label, name, type_name))

    def call_function(self, function, named_args, positional, pipeline_input):
        scope = Scope(self.script_scope if function.file is None else self.global_scope)
        scope.vars["pscmdlet"] = self.cmdlet
        self.bind(self.params_of(function.node), named_args, positional, scope, function.name)
        body = [c for c in function.node.children if c.type == "script_block"]
        out = []
        try:
            if body:
                for child in named(body[0]):
                    if child.type != "param_block":
                        self.statement(child, scope, out)
            else:
                for child in named(function.node):
                    if child.type not in ("function_name", "param_block"):
                        self.statement(child, scope, out)
        except Return:
            pass
        return out

    def load_functions(self, path, source_file=None):
        root = self.parse(path)
        for node in named(root):
            lists = [node] if node.type == "function_statement" else \
                ([c for c in named(node) if c.type == "function_statement"] if node.type == "statement_list" else [])
            for f in lists:
                name = self.text([c for c in f.children if c.type == "function_name"][0])
                self.functions[name.lower()] = Function(name, f, source_file)
        return root

    def run_script(self, path, parameters):
        root = self.parse(path)
        self.script_scope.vars["psscriptroot"] = os.path.dirname(os.path.abspath(path))
        self.script_scope.vars["pscmdlet"] = self.cmdlet
        param_block = [c for c in root.children if c.type == "param_block"]
        params = self.read_params(param_block[0]) if param_block else []
        self.bind(params, {k: from_json(v) for k, v in parameters.items()}, [], self.script_scope,
                  os.path.basename(path))
        out = []
        try:
            for child in named(root):
                if child.type != "param_block":
                    self.statement(child, self.script_scope, out)
        except Return:
            pass
        return out


class _Void:
    pass


VOID = _Void()


class _AutomationNull:
    """What a variable holds after "$x = <a command that wrote nothing>": $null to every
    expression, but no element at all to @($x) and foreach, as in PowerShell."""


AUTOMATION_NULL = _AutomationNull()


def collapse(values):
    values = [v for v in values if v is not VOID]
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def unescape(text):
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "`" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0", "a": "\a"}.get(nxt, nxt))
            i += 2
            continue
        if ch == '"' and text[i + 1:i + 2] == '"':
            out.append('"')
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def dotnet_format(template, args):
    def repl(match):
        return to_str(args[int(match.group(1))])
    return re.sub(r"\{(\d+)\}", repl, template)


def string_method(text, method, args, fail):
    if method == "trim":
        return text.strip(to_str(args[0])) if args else text.strip()
    if method == "trimend":
        return text.rstrip(to_str(args[0])) if args else text.rstrip()
    if method == "trimstart":
        return text.lstrip(to_str(args[0])) if args else text.lstrip()
    if method == "tolower":
        return text.lower()
    if method == "toupper":
        return text.upper()
    if method == "startswith":
        return text.startswith(to_str(args[0]))
    if method == "endswith":
        return text.endswith(to_str(args[0]))
    if method == "contains":
        return to_str(args[0]) in text
    if method == "substring":
        start = int(to_number(args[0]))
        return text[start:start + int(to_number(args[1]))] if len(args) > 1 else text[start:]
    if method == "replace":
        return text.replace(to_str(args[0]), to_str(args[1]))
    if method == "indexof":
        return text.find(to_str(args[0]))
    if method == "split":
        return text.split(to_str(args[0]))
    fail("string method " + method)


# --- built-in cmdlets -----------------------------------------------------------------
def b_write_host(it, named_args, positional, data, scope, node):
    it.record("Write-Host", named_args, positional)
    parts = positional + ([named_args["Object"]] if "Object" in named_args else [])
    it.host.append(" ".join(to_str(p) for p in parts))
    return []


def b_write_warning(it, named_args, positional, data, scope, node):
    it.record("Write-Warning", named_args, positional)
    it.warnings.append(to_str(named_args.get("Message", positional[0] if positional else "")))
    return []


def b_quiet(name):
    def run(it, named_args, positional, data, scope, node):
        it.record(name, named_args, positional)
        return []
    return run


def b_write_output(it, named_args, positional, data, scope, node):
    out = []
    for value in positional:
        out.extend(value if isinstance(value, list) else [value])
    return out


def b_out_null(it, named_args, positional, data, scope, node):
    return []


def win_join(parent, child):
    return to_str(parent).rstrip("\\/") + "\\" + to_str(child).lstrip("\\/")


def b_join_path(it, named_args, positional, data, scope, node):
    values = dict((k.lower(), v) for k, v in named_args.items())
    parent = values.get("path", positional[0] if positional else None)
    child = values.get("childpath", positional[1] if len(positional) > 1 else
                       (positional[0] if "path" in values and positional else None))
    return [win_join(parent, child)]


def b_split_path(it, named_args, positional, data, scope, node):
    values = dict((k.lower(), v) for k, v in named_args.items())
    path = to_str(values.get("path", positional[0] if positional else "")).replace("/", "\\").rstrip("\\")
    head, _, tail = path.rpartition("\\")
    return [tail if values.get("leaf") else head]


def b_import_module(it, named_args, positional, data, scope, node):
    it.record("Import-Module", named_args, positional)
    values = dict((k.lower(), v) for k, v in named_args.items())
    path = to_str(values.get("name", positional[0] if positional else "")).replace("\\", "/")
    if not os.path.isfile(path):
        raise PSError("Import-Module: the module file %s was not found." % path)
    module_scope = Scope(it.global_scope)
    root = it.load_functions(path, source_file=path)
    for child in named(root):
        statements = named(child) if child.type == "statement_list" else [child]
        for statement in statements:
            if statement.type not in ("param_block", "function_statement"):
                it.statement(statement, module_scope, [])
    return []


def b_foreach_object(it, named_args, positional, data, scope, node):
    block = positional[0] if positional else named_args.get("Process")
    if not isinstance(block, ScriptBlock):
        it.fail(node, "ForEach-Object without a script block")
    out = []
    for item in data or []:
        previous = scope.vars.get("_")
        scope.vars["_"] = item
        try:
            for child in named(block.node):
                it.statement(child, scope, out)
        finally:
            scope.vars["_"] = previous
    return out


def b_where_object(it, named_args, positional, data, scope, node):
    block = positional[0] if positional else named_args.get("FilterScript")
    out = []
    for item in data or []:
        previous = scope.vars.get("_")
        scope.vars["_"] = item
        try:
            found = []
            for child in named(block.node):
                it.statement(child, scope, found)
            if truthy(collapse(found)):
                out.append(item)
        finally:
            scope.vars["_"] = previous
    return out


def b_select_object(it, named_args, positional, data, scope, node):
    values = dict((k.lower(), v) for k, v in named_args.items())
    items = list(data or [])
    if "skip" in values:
        items = items[int(to_number(values["skip"])):]
    if "first" in values:
        items = items[:int(to_number(values["first"]))]
    if "expandproperty" in values:
        items = [it.member(i, to_str(values["expandproperty"]), node) for i in items]
    if set(values) - {"skip", "first", "expandproperty"}:
        it.fail(node, "Select-Object parameters " + ", ".join(sorted(values)))
    return items


def b_sort_object(it, named_args, positional, data, scope, node):
    values = dict((k.lower(), v) for k, v in named_args.items())
    prop = to_str(values.get("property", positional[0] if positional else ""))
    return sorted(list(data or []), key=lambda i: it.member(i, prop, node) if prop else i,
                  reverse=bool(values.get("descending")))


def b_new_object(it, named_args, positional, data, scope, node):
    values = dict((k.lower(), v) for k, v in named_args.items())
    type_name = to_str(values.get("typename", positional[0] if positional else ""))
    if type_name.startswith("System.Collections.Generic.List["):
        return [PSList()]
    if type_name == "System.Text.UTF8Encoding":
        args = values.get("argumentlist")
        return [PSObject({"TypeName": type_name, "EmitsByteOrderMark": truthy(args)})]
    it.fail(node, "New-Object " + type_name)


def b_select_string(it, named_args, positional, data, scope, node):
    values = dict((k.lower(), v) for k, v in named_args.items())
    given = values.get("pattern", positional[0] if positional else None)
    if given is None:
        it.fail(node, "Select-String without -Pattern")
    if values.get("simplematch"):
        wanted = to_str(given)
        hit = lambda line: wanted.lower() in line.lower()
    else:
        pattern = dotnet_regex(to_str(given))
        hit = lambda line: pattern.search(line) is not None
    out = []
    for number, item in enumerate(data or [], 1):
        line = to_str(item)
        if hit(line):
            out.append(PSObject({"Line": line, "LineNumber": number}))
    return out


def b_get_content(it, named_args, positional, data, scope, node):
    """Reads a file of this repository (a Windows path of it is mapped back); others must be faked."""
    values = dict((k.lower(), v) for k, v in named_args.items())
    path = to_str(values.get("literalpath", values.get("path", positional[0] if positional else "")))
    local = path.replace("\\", "/")
    if not os.path.isfile(local):
        raise Unsupported("Get-Content of %s: not a file here, fake it" % path)
    it.record("Get-Content", named_args, positional)
    with open(local, encoding="utf-8-sig") as handle:
        return handle.read().splitlines()


def b_start_sleep(it, named_args, positional, data, scope, node):
    it.record("Start-Sleep", named_args, positional)
    return []


BUILTINS = {
    "write-host": b_write_host,
    "write-warning": b_write_warning,
    "write-verbose": b_quiet("Write-Verbose"),
    "write-debug": b_quiet("Write-Debug"),
    "write-output": b_write_output,
    "out-null": b_out_null,
    "set-strictmode": b_quiet("Set-StrictMode"),
    "export-modulemember": b_quiet("Export-ModuleMember"),
    "import-module": b_import_module,
    "join-path": b_join_path,
    "split-path": b_split_path,
    "foreach-object": b_foreach_object,
    "where-object": b_where_object,
    "select-object": b_select_object,
    "sort-object": b_sort_object,
    "start-sleep": b_start_sleep,
    "new-object": b_new_object,
    "select-string": b_select_string,
    "get-content": b_get_content,
    "push-location": b_quiet("Push-Location"),
    "pop-location": b_quiet("Pop-Location"),
}


def inventory(path):
    """What a file's parse tree contains, for the form checks: every command called (name,
    line, its -Parameter arguments as source text, the function it is in), every token
    type, every variable, each Invoke-NativeCommand result with whether its ExitCode is
    read before the variable is assigned again, and the lines the grammar cannot parse."""
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    with open(path, "rb") as handle:
        source = handle.read()
    root = parser.parse(source[3:] if source.startswith(b"\xef\xbb\xbf") else source).root_node
    commands, tokens, variables, assignments, exit_reads, errors = [], set(), set(), [], [], []

    def text(node):
        return node.text.decode("utf-8")

    def walk(node, function):
        if node.type == "function_statement":
            function = text([c for c in node.children if c.type == "function_name"][0])
        if not node.is_named:
            tokens.add(node.type)
        if node.type == "ERROR" or node.is_missing:
            errors.append(node.start_point[0] + 1)
        if node.type in ("variable", "braced_variable"):
            variables.add(text(node).lower())
        if node.type == "command":
            first = node.children[0]
            name = text(first) if first.type != "command_invokation_operator" else "& " + text(node.children[1])
            elements = [c for c in node.children if c.type == "command_elements"]
            parts = [c for c in (elements[0].children if elements else [])
                     if c.type not in ("command_argument_sep", "comment")]
            named_args = {}
            for i, part in enumerate(parts):
                if part.type == "command_parameter":
                    value = parts[i + 1] if i + 1 < len(parts) and parts[i + 1].type != "command_parameter" else None
                    named_args[text(part)[1:].rstrip(":")] = text(value) if value is not None else True
            commands.append({"name": name, "line": node.start_point[0] + 1, "named": named_args, "function": function})
        if node.type == "assignment_expression":
            left = unwrap(named(node)[0])
            right = text(named(node)[-1])
            assignments.append((text(left).lower(), node.start_byte, node.end_byte,
                                right.startswith("Invoke-NativeCommand"), node.start_point[0] + 1, right))
        if node.type == "member_access" and text(named(node)[-1]).lower() == "exitcode":
            exit_reads.append((text(unwrap(named(node)[0])).lower(), node.start_byte))
        for child in node.children:
            walk(child, function)

    walk(root, None)
    native = []
    for i, (var, start, end, is_native, line, right) in enumerate(assignments):
        if not is_native:
            continue
        later = [a[1] for a in assignments[i + 1:] if a[0] == var]
        limit = later[0] if later else len(source)
        native.append({"variable": var, "line": line, "call": right,
                       "checked": any(v == var and end <= at < limit for v, at in exit_reads)})
    return {"commands": commands, "tokens": sorted(tokens), "variables": sorted(variables), "nativeResults": native,
            "unparsed": sorted(set(errors))}


def main():
    if sys.argv[1:2] == ["--inventory"]:
        json.dump({f: inventory(f) for f in sys.argv[2:]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    try:
        scenario = json.load(sys.stdin)
        script = scenario["script"]
    except (ValueError, KeyError) as exc:
        sys.stderr.write("pslite: bad scenario on stdin: %s\n" % exc)
        return 2
    if not os.path.isfile(script):
        sys.stderr.write("pslite: no such script: %s\n" % script)
        return 2
    it = Interpreter(scenario)
    error = None
    output = []
    try:
        if "call" in scenario:
            for module in scenario.get("modules", []):
                it.load_functions(os.path.join(os.path.dirname(script), module), source_file=module)
            it.load_functions(script)
            it.script_scope.vars["psscriptroot"] = os.path.dirname(os.path.abspath(script))
            call = scenario["call"]
            function = it.functions.get(call["function"].lower())
            if function is None:
                sys.stderr.write("pslite: %s defines no function %s\n" % (script, call["function"]))
                return 2
            arguments = {k: from_json(v) for k, v in call.get("arguments", {}).items()}
            output = it.call_function(function, arguments, [], None)
        else:
            output = it.run_script(script, scenario.get("run", {}).get("parameters", {}))
    except PSError as exc:
        error = exc.message
    except (Return, Break, Continue):
        pass
    except Unsupported as exc:
        sys.stderr.write("pslite: unsupported: %s\n" % exc)
        return 3
    output = [o for o in output if o is not VOID]
    json.dump({"calls": it.calls, "host": it.host, "warnings": it.warnings, "output": to_json(output),
               "error": error, "shouldProcess": it.should_process, "files": it.files,
               "variables": {k: to_json(v) for k, v in it.script_scope.vars.items()
                             if isinstance(v, (str, int, float, bool, list, PSObject)) or v is None}},
              sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
