"use strict";
// Static checks of what the issue asks of every PowerShell script and of the
// debugger command files, done on the text since no PowerShell or WinDbg runs here.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const REPO = path.join(__dirname, "..", "..");
const SCRIPTS = path.join(REPO, "scripts");
const WINDBG = path.join(REPO, "windbg");
const ps1Files = fs.readdirSync(SCRIPTS).filter((f) => f.endsWith(".ps1")).sort();

function read(file) {
    return fs.readFileSync(file, "utf8");
}

// The code of a script without its comment-based help, # comments and string contents.
function codeOnly(text) {
    let code = text.replace(/<#[\s\S]*?#>/g, "");
    code = code.replace(/'[^'\n]*'/g, "''");
    code = code.replace(/"(?:`.|[^"`\n])*"/g, "\"\"");
    code = code.replace(/#.*$/gm, "");
    return code;
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

test("the five workflow scripts are there", () => {
    assert.deepEqual(ps1Files, ["Initialize-TestVM.ps1", "Install-TestDriver.ps1", "Invoke-DumpAnalysis.ps1",
        "New-LiveKernelDump.ps1", "Remove-TestDriver.ps1"]);
});

for (const file of ps1Files) {
    const text = read(path.join(SCRIPTS, file));
    const code = codeOnly(text);

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

    test(file + ": elevation is checked with WindowsPrincipal", () => {
        assert.match(text, /New-Object -TypeName Security\.Principal\.WindowsPrincipal/);
        assert.match(text, /IsInRole\(\[Security\.Principal\.WindowsBuiltInRole\]::Administrator\)/);
    });

    test(file + ": native tools run through Invoke-NativeCommand, exit codes checked, no sc stop", () => {
        assert.doesNotMatch(code, /(^|[\s;&|(])(sc|bcdedit|verifier)(\.exe)?\s+[\/a-z]/im,
            "sc/bcdedit/verifier are never called directly (the sc alias is Set-Content)");
        assert.doesNotMatch(text, /ArgumentList @\([^)]*'stop'/i, "sc.exe stop is never run");
        const calls = (text.match(/Invoke-NativeCommand -FilePath/g) || []).length;
        const checks = (text.match(/\.ExitCode -(ne|eq) |-notcontains \$result\.ExitCode/g) || []).length;
        assert.ok(checks >= calls, file + ": " + calls + " native calls but " + checks + " exit-code checks");
    });

    test(file + ": no syntax newer than Windows PowerShell 5.1", () => {
        assert.doesNotMatch(code, /&&|\|\||\?\?|\?\.|\$IsWindows|ForEach-Object -Parallel|Join-String/);
    });
}

test("the debugger scripts follow the seed's steps in order", () => {
    const mex = read(path.join(WINDBG, "analyze-mex.txt"));
    const builtin = read(path.join(WINDBG, "analyze-builtin.txt"));
    function inOrder(text, steps) {
        let at = -1;
        for (const step of steps) {
            const i = text.indexOf("\n" + step + "\n", at + 1);
            assert.ok(i > at, "step '" + step + "' in order");
            at = i;
        }
    }
    inOrder(mex, ["!mex.di", "!WrFastMutex", "!WrFastMutexWalk 1", "!WrFastMutexJs"]);
    inOrder(builtin, ["vertarget", ".bugcheck", "!stacks 2 ExAcquireFastMutex", "!WrFastMutexJs",
        "!WrFastMutexWalk"]);
    assert.match(builtin, /\ndx -g @\$cursession\.Processes\[4\]\.Threads\.Where\(t => t\.KernelObject\.Tcb\.State == 5 && t\.KernelObject\.Tcb\.WaitReason == 34\)/);
    for (const text of [mex, builtin]) {
        for (const line of text.split("\n")) {
            if (line.startsWith("$$") || line.startsWith(".echo")) {
                assert.ok(!line.includes(";"), "a semicolon would end this comment/echo early: " + line);
            }
        }
        assert.ok(!/^q$/m.test(text), "the command files do not quit: Invoke-DumpAnalysis.ps1 adds q");
    }
});

test("every !alias the command files use is registered by WrFastMutex.js", () => {
    const previous = global.host;
    global.host = {
        apiVersionSupport: function () {},
        functionAlias: function (fn, name) {
            this.name = name;
        }
    };
    let names;
    try {
        names = require("../WrFastMutex.js").initializeScript().map((r) => r.name).filter(Boolean);
    } finally {
        global.host = previous;
    }
    const used = new Set();
    for (const file of ["analyze-mex.txt", "analyze-builtin.txt"]) {
        const re = /^!(WrFastMutex\w+)/gm;
        let m;
        const text = read(path.join(WINDBG, file));
        while ((m = re.exec(text)) !== null) {
            used.add(m[1]);
        }
    }
    assert.deepEqual([...used].sort(), ["WrFastMutexJs", "WrFastMutexWalk"]);
    for (const name of used) {
        assert.ok(names.includes(name), name + " is registered");
    }
});

test("Invoke-DumpAnalysis.ps1 uses the repository's command files and extension", () => {
    const text = read(path.join(SCRIPTS, "Invoke-DumpAnalysis.ps1"));
    for (const name of ["analyze-mex.txt", "analyze-builtin.txt", "WrFastMutex.js"]) {
        assert.ok(text.includes("'" + name + "'"), name);
        assert.ok(fs.existsSync(path.join(WINDBG, name)), name + " exists");
    }
    assert.match(text, /\.scriptload WrFastMutex\.js/);
    assert.match(text, /\$lines\.Add\('q'\)/);
});
