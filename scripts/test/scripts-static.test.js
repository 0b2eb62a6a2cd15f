"use strict";
// The form every PowerShell script must have: #Requires, CmdletBinding and help for every
// parameter, the shared module imported once, read from the text; native programs only
// through Invoke-NativeCommand with their exit code read and nothing newer than Windows
// PowerShell 5.1, read from the parse tree (pslite.py --inventory). What the scripts do
// is run under pslite.py in the *-behaviour tests.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const os = require("node:os");
const { SCRIPTS, read, functionsOf } = require("./lib/ps-text.js");
const { inventory, formProblems } = require("./lib/pslite.js");

const ps1Files = fs.readdirSync(SCRIPTS).filter((f) => f.endsWith(".ps1")).sort();
// The helpers every script shares live once in this module; each script imports it.
const MODULE = "TestDriver.Common.psm1";
const MODULE_PATH = path.join(SCRIPTS, MODULE);
const IMPORT_LINE = "Import-Module -Name (Join-Path $PSScriptRoot '" + MODULE + "') -Force";
const SHARED = ["Test-Administrator", "Assert-Administrator", "Invoke-NativeCommand", "Write-NativeOutput",
    "Resolve-ExistingFile", "Test-TestSigningActive", "Restart-ComputerIfRequested", "ConvertFrom-ImagePath", "Get-DriverService",
    "Find-TestDriverBuild"];
// The text from the "(" at index open to its matching ")", both included.
function balanced(text, open) {
    let depth = 0;
    for (let i = open; i < text.length; i++) {
        if (text[i] === "(") {
            depth++;
        } else if (text[i] === ")") {
            depth--;
            if (depth === 0) {
                return text.substring(open, i + 1);
            }
        }
    }
    assert.fail("unbalanced parentheses after index " + open);
}

// Names declared in the top-level param( ... ) block.
function parameterNames(text) {
    const start = text.search(/^param\($/m);
    assert.ok(start >= 0, "top-level param( block");
    const end = text.indexOf("\n)\n", start);
    assert.ok(end > start, "end of param block");
    const block = text.substring(start, end);
    const names = [];
    const re = /^\s*\[[A-Za-z\[\]]+\]\$([A-Za-z]+)/gm;
    let m;
    while ((m = re.exec(block)) !== null) {
        names.push(m[1]);
    }
    return names;
}

test("the five workflow scripts and their shared module are there", () => {
    assert.deepEqual(ps1Files, ["Initialize-TestVM.ps1", "Install-TestDriver.ps1", "Invoke-DumpAnalysis.ps1",
        "New-LiveKernelDump.ps1", "Remove-TestDriver.ps1"]);
    assert.ok(fs.existsSync(MODULE_PATH), MODULE);
    assert.deepEqual(fs.readdirSync(SCRIPTS).filter((f) => f.endsWith(".psm1")), [MODULE]);
});

test(MODULE + ": PowerShell 5.1, Stop on errors, each shared helper defined once and exported", () => {
    const text = read(MODULE_PATH);
    assert.ok(text.startsWith("#Requires -Version 5.1\n"), "first line #Requires -Version 5.1");
    assert.match(text, /^\$ErrorActionPreference = 'Stop'$/m);
    assert.match(text, /^Set-StrictMode -Version 2\.0$/m);
    const functions = functionsOf(text);
    assert.deepEqual([...functions.keys()].sort(), [...SHARED].sort(), "functions of the module");
    for (const name of SHARED) {
        assert.equal((text.match(new RegExp("^function " + name + " \\{$", "gm")) || []).length, 1, name + " defined once");
    }
    const exportAt = text.search(/^Export-ModuleMember -Function @\($/m);
    assert.ok(exportAt >= 0, "Export-ModuleMember -Function @(...)");
    const exported = (balanced(text, text.indexOf("(", exportAt)).match(/'[A-Za-z-]+'/g) || [])
        .map((s) => s.slice(1, -1)).sort();
    assert.deepEqual(exported, [...SHARED].sort(), "exported functions");
});

test(MODULE + ": comment-based help for every exported function and parameter", () => {
    const functions = functionsOf(read(MODULE_PATH));
    for (const [name, body] of functions) {
        const help = body.match(/^\s*<#\n([\s\S]*?)#>/);
        assert.ok(help, name + ": comment-based help at the top of the function");
        for (const section of [".SYNOPSIS", ".EXAMPLE"]) {
            assert.match(help[1], new RegExp("^\\s*\\" + section + "$", "m"), name + ": " + section);
        }
        const documented = [];
        const re = /^\s*\.PARAMETER (\w+)$/gm;
        let m;
        while ((m = re.exec(help[1])) !== null) {
            documented.push(m[1]);
        }
        const paramAt = body.search(/^\s*param\(/m);
        assert.ok(paramAt >= 0, name + ": param( block");
        const block = balanced(body, body.indexOf("(", paramAt));
        const declared = [];
        const declRe = /(?:^|[\](,(])\s*\$([A-Za-z]+)\b(?!\.)/g;
        while ((m = declRe.exec(block.slice(1, -1))) !== null) {
            declared.push(m[1]);
        }
        assert.deepEqual(declared.filter((n) => !documented.includes(n)), [], name + ": undocumented parameters");
        assert.deepEqual(documented.filter((n) => !declared.includes(n)), [], name + ": documented but not declared");
    }
});

test(MODULE + ": elevation read from WindowsPrincipal, native calls with a relaxed error preference", () => {
    // Neither runs here: the behaviour tests fake Test-Administrator, and pslite does not
    // model stderr lines becoming errors under the Stop preference.
    const text = read(MODULE_PATH);
    const functions = functionsOf(text);
    const testAdmin = functions.get("Test-Administrator");
    assert.match(testAdmin, /New-Object -TypeName Security\.Principal\.WindowsPrincipal/);
    assert.match(testAdmin, /IsInRole\(\[Security\.Principal\.WindowsBuiltInRole\]::Administrator\)/);
    // What Invoke-NativeCommand returns and throws is run in common-behaviour.test.js; its
    // error preference (stderr lines must not stop a native call) is not modelled there.
    const invoke = functions.get("Invoke-NativeCommand");
    assert.match(invoke, /\$ErrorActionPreference = 'Continue'/);
    assert.match(invoke, /finally \{\n\s*\$ErrorActionPreference = \$previous/);
    // $LASTEXITCODE cleared first, so a program that did not start cannot leave a stale code
    assert.match(invoke, /\$global:LASTEXITCODE = \$null\n\s*try \{\n\s*\$lines = & \$FilePath @ArgumentList 2>&1/);
});

for (const file of ps1Files) {
    const text = read(path.join(SCRIPTS, file));

    test(file + ": PowerShell 5.1, CmdletBinding with ShouldProcess, Stop on errors", () => {
        assert.ok(text.startsWith("#Requires -Version 5.1\n"), "first line #Requires -Version 5.1");
        assert.match(text, /^\[CmdletBinding\(SupportsShouldProcess[,)]/m);
        assert.match(text, /^\$ErrorActionPreference = 'Stop'$/m);
        assert.ok(/\$PSCmdlet\.ShouldProcess\(/.test(text), "uses $PSCmdlet.ShouldProcess");
    });

    test(file + ": comment-based help documents every parameter", () => {
        for (const section of [".SYNOPSIS", ".DESCRIPTION", ".EXAMPLE"]) {
            assert.ok(text.includes("\n" + section + "\n"), section);
        }
        const documented = new Set();
        const re = /^\.PARAMETER (\w+)$/gm;
        let m;
        while ((m = re.exec(text)) !== null) {
            documented.add(m[1]);
        }
        const declared = parameterNames(text);
        assert.ok(declared.length > 0);
        assert.deepEqual(declared.filter((n) => !documented.has(n)), [], "undocumented parameters");
        assert.deepEqual([...documented].filter((n) => !declared.includes(n)), [], "documented but not declared");
    });

    test(file + ": imports the shared module and does not redefine its helpers", () => {
        const lines = text.split("\n");
        const importAt = lines.indexOf(IMPORT_LINE);
        assert.ok(importAt >= 0, "imports " + MODULE + " with: " + IMPORT_LINE);
        assert.equal(lines.filter((l) => l === IMPORT_LINE).length, 1, "imported once");
        const strictAt = lines.indexOf("Set-StrictMode -Version 2.0");
        assert.ok(strictAt >= 0 && strictAt < importAt, "imported after param() and the preferences");
        const firstFunction = lines.findIndex((l) => /^function /.test(l));
        assert.ok(firstFunction < 0 || importAt < firstFunction, "imported before the script's own functions");
        // the help block may name a helper; code lines keep their numbers with it blanked out
        const codeLines = text.replace(/<#[\s\S]*?#>/g, (help) => help.replace(/[^\n]/g, " ")).split("\n");
        for (const name of SHARED) {
            assert.doesNotMatch(text, new RegExp("^\\s*function " + name + "\\b", "mi"), name + " comes from " + MODULE);
            const use = codeLines.findIndex((l, i) => i !== importAt && new RegExp("\\b" + name + "\\b").test(l) &&
                !/^\s*#/.test(l));
            assert.ok(use < 0 || use > importAt, name + " is used only after the import");
        }
        assert.doesNotMatch(text, /Security\.Principal\.WindowsPrincipal/, "the elevation check lives in " + MODULE);
    });

}

test("form rules, read from the parse tree: native tools only through Invoke-NativeCommand with their exit code read, " +
    "no sc.exe stop, nothing newer than Windows PowerShell 5.1", () => {
    const files = ps1Files.concat([MODULE]).map((f) => path.join(SCRIPTS, f));
    const all = inventory(files);
    for (const file of files) {
        assert.deepEqual(formProblems(all[file]), [], path.basename(file));
    }
});

test("the form rules catch each break", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "form-"));
    const file = path.join(dir, "bad.ps1");
    fs.writeFileSync(file, [
        "sc.exe stop TestDrv",
        "& 'bcdedit' /set testsigning on",
        "$r = Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('stop', 'TestDrv')",
        "$r = Invoke-NativeCommand -FilePath 'verifier.exe' -ArgumentList @('/reset')",
        "if ($r.ExitCode -ne 0) { throw 'x' }",
        "Get-Item x && Get-Item y",
        "$a = $b ?? 1",
        "if ($IsWindows) { 1..3 | ForEach-Object -Parallel { $_ } }",
        ""
    ].join("\n"));
    try {
        assert.deepEqual(formProblems(inventory([file])[file]), [
            "line 1: sc.exe called directly, not through Invoke-NativeCommand (and the sc alias is Set-Content)",
            "line 2: & 'bcdedit' called directly, not through Invoke-NativeCommand (and the sc alias is Set-Content)",
            "line 3: sc.exe stop",
            "line 8: ForEach-Object is newer than Windows PowerShell 5.1",
            "line 3: $r.ExitCode is never read after Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('stop', 'TestDrv')",
            "operator && is newer than Windows PowerShell 5.1",
            "line 7: not PowerShell the grammar can parse (PowerShell 7 syntax, or a typo)",
            "$IsWindows is newer than Windows PowerShell 5.1"
        ]);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
