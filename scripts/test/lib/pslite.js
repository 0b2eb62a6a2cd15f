"use strict";
// Runs a scripts/ script, or one of its functions, under scripts/test/pslite.py with fakes
// for the commands it calls, and returns what it did: the calls in order, the host lines,
// the warnings, the output and the PowerShell error it stopped with (or null).
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const { REPO, python } = require("./python.js");

const PSLITE = path.join(__dirname, "..", "pslite.py");

// The raw run: { status, stdout, stderr }. scenario.script is relative to scripts/ or absolute.
function spawnScenario(scenario) {
    const input = Object.assign({}, scenario, { script: path.resolve(REPO, "scripts", scenario.script) });
    return spawnSync(python(), [PSLITE], { input: JSON.stringify(input), encoding: "utf8", cwd: REPO });
}

function runScenario(scenario) {
    const r = spawnScenario(scenario);
    assert.equal(r.status, 0, "pslite.py exited " + r.status + ":\n" + r.stderr);
    const result = JSON.parse(r.stdout);
    // The commands called, each as "Name arg arg" (positional) or "Name -Param value".
    result.commandLines = result.calls.map((c) => [c.command].concat(
        c.positional.map(String),
        Object.keys(c.named).map((k) => "-" + k + (c.named[k] === true ? "" : " " + JSON.stringify(c.named[k])))
    ).join(" "));
    result.called = (name) => result.calls.filter((c) => c.command.toLowerCase() === name.toLowerCase());
    return result;
}

// A native program's answer: its exit code and output lines, for the call with these arguments.
function nativeFake(program, args, exitCode, output) {
    return { command: program, when: { args }, exitCode, output: output || [] };
}

// Every native program a script runs goes through Invoke-NativeCommand, which asks
// Get-Command first; these programs "exist".
function programsExist(names) {
    return names.map((name) => ({ command: "Get-Command", when: { Name: name }, output: [{ Path: "C:\\Windows\\System32\\" + name }] }));
}

// What each file's parse tree holds (pslite.py --inventory): commands, tokens, variables,
// Invoke-NativeCommand results and whether their ExitCode is read, lines that do not parse.
function inventory(files) {
    const r = spawnSync(python(), [PSLITE, "--inventory"].concat(files), { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
}

// The form rules the inventory of one file breaks, as sentences (empty: none).
const DIRECT_NATIVE = /^(& )?['"]?(sc|bcdedit|verifier)(\.exe)?['"]?$/i;
const NEWER_TOKENS = ["&&", "||", "??", "??=", "?.", "?["];
function formProblems(inv) {
    const problems = [];
    for (const c of inv.commands) {
        if (DIRECT_NATIVE.test(c.name)) {
            problems.push("line " + c.line + ": " + c.name + " called directly, not through Invoke-NativeCommand " +
                "(and the sc alias is Set-Content)");
        }
        if (c.name === "Invoke-NativeCommand" && /sc(\.exe)?'?$/i.test(String(c.named.FilePath)) &&
            /^@\(\s*'stop'/i.test(String(c.named.ArgumentList))) {
            problems.push("line " + c.line + ": sc.exe stop");
        }
        if (/^Join-String$/i.test(c.name) || (/^ForEach-Object$/i.test(c.name) && "Parallel" in c.named)) {
            problems.push("line " + c.line + ": " + c.name + " is newer than Windows PowerShell 5.1");
        }
    }
    for (const n of inv.nativeResults.filter((x) => !x.checked)) {
        problems.push("line " + n.line + ": " + n.variable + ".ExitCode is never read after " + n.call);
    }
    for (const t of inv.tokens.filter((x) => NEWER_TOKENS.includes(x))) {
        problems.push("operator " + t + " is newer than Windows PowerShell 5.1");
    }
    for (const line of inv.unparsed) {
        problems.push("line " + line + ": not PowerShell the grammar can parse (PowerShell 7 syntax, or a typo)");
    }
    if (inv.variables.includes("$iswindows")) {
        problems.push("$IsWindows is newer than Windows PowerShell 5.1");
    }
    return problems;
}

module.exports = { spawnScenario, runScenario, nativeFake, programsExist, inventory, formProblems };

