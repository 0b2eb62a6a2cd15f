"use strict";
// Invoke-DumpAnalysis.ps1 under pslite.py: which debugger it looks for and runs, and
// what it refuses before anything runs.
const test = require("node:test");
const assert = require("node:assert/strict");
const { runScenario } = require("./lib/pslite.js");

const KITS = "C:\\Program Files (x86)\\Windows Kits\\10\\Debuggers\\x64";
const ENV = { "ProgramFiles(x86)": "C:\\Program Files (x86)", ProgramFiles: "C:\\Program Files" };

function findDebugger(path, fakes) {
    return runScenario({
        script: "Invoke-DumpAnalysis.ps1", modules: ["TestDriver.Common.psm1"], env: ENV,
        call: { function: "Find-Debugger", arguments: path ? { Path: path } : {} },
        fakes: (fakes || []).concat([
            { command: "Get-Command", output: [] },
            { command: "Test-Path", output: [false] }
        ])
    });
}

// Every name the search asked about, by Get-Command or Test-Path.
function lookedFor(r) {
    return r.calls.filter((c) => c.command === "Get-Command").map((c) => c.named.Name)
        .concat(r.calls.filter((c) => c.command === "Test-Path").map((c) => c.named.LiteralPath));
}

test("kd.exe on PATH is the debugger; cdb.exe is never looked for", () => {
    const r = findDebugger(null, [{ command: "Get-Command", when: { Name: "kd.exe" }, output: [{ Path: "D:\\dbg\\kd.exe" }] }]);
    assert.equal(r.error, null);
    assert.deepEqual(r.output, ["D:\\dbg\\kd.exe"]);
    assert.deepEqual(lookedFor(r), ["kd.exe"]);
});

test("without kd.exe on PATH, the Windows Kits folders are searched for kd.exe only", () => {
    const r = findDebugger(null, [{ command: "Test-Path", when: { LiteralPath: KITS + "\\kd.exe" }, output: [true] }]);
    assert.deepEqual(r.output, [KITS + "\\kd.exe"]);
    const none = findDebugger(null, []);
    assert.match(none.error, /^kd\.exe was not found\. This script needs "Debugging Tools for Windows"/);
    assert.match(none.error, /The WinDbg app from the Microsoft Store or winget does not put kd\.exe on PATH/);
    assert.deepEqual(lookedFor(none), ["kd.exe", KITS + "\\kd.exe", "C:\\Program Files\\Windows Kits\\10\\Debuggers\\x64\\kd.exe"]);
    assert.ok(!lookedFor(none).some((name) => /cdb/i.test(name)), lookedFor(none).join(", "));
});

test("-DebuggerPath: kd.exe is taken as it is, another debugger runs with a warning", () => {
    const exists = (file) => [
        { command: "Test-Path", when: { LiteralPath: file }, output: [true] },
        { command: "Resolve-Path", when: { LiteralPath: file }, output: [{ ProviderPath: file }] }
    ];
    const kd = findDebugger("C:\\dbg\\KD.EXE", exists("C:\\dbg\\KD.EXE"));
    assert.deepEqual([kd.output, kd.warnings], [["C:\\dbg\\KD.EXE"], []]);
    const cdb = findDebugger("C:\\dbg\\cdb.exe", exists("C:\\dbg\\cdb.exe"));
    assert.deepEqual(cdb.output, ["C:\\dbg\\cdb.exe"]);
    assert.match(cdb.warnings[0], /is not kd\.exe: Microsoft documents the analysis of kernel-mode dumps with KD or WinDbg only/);
    const missing = findDebugger("C:\\dbg\\kd.exe", []);
    assert.equal(missing.error, "Debugger not found: C:\\dbg\\kd.exe");
});

test("a -SymbolCache that would cut the unquoted .symfix+ line is refused before anything is looked at or written", () => {
    for (const bad of ["C:\\My Symbols", "C:\\a;srv*C:\\b", "C:\\a\"b", "C:\\a\tb", " "]) {
        const r = runScenario({ script: "Invoke-DumpAnalysis.ps1", run: { parameters: { DumpPath: "C:\\d.dmp", SymbolCache: bad } } });
        assert.match(r.error, /^-SymbolCache '.*' cannot be used: it goes into the debugger command file as ".symfix\+ <folder>"/, bad);
        assert.deepEqual(r.calls.map((c) => c.command).filter((n) => n !== "Set-StrictMode" && n !== "Export-ModuleMember"),
            ["Import-Module"], bad + ": nothing but the module import ran");
    }
    // an acceptable one gets past the check: the next step looks for the dump
    for (const ok of ["C:\\Symbols", "D:\\sym-cache\\x64", "\\\\server\\symbols"]) {
        const r = runScenario({
            script: "Invoke-DumpAnalysis.ps1", run: { parameters: { DumpPath: "C:\\d.dmp", SymbolCache: ok } },
            fakes: [{ command: "Test-Path", output: [false] }]
        });
        assert.equal(r.error, "Dump not found: C:\\d.dmp", ok);
    }
});
