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

// ---- whole runs: the debugger (kd.exe) and its logs are fakes -------------------------------
const path = require("node:path");
const REPO_WIN = path.join(__dirname, "..", "..").replace(/\//g, "\\");
const KD = "C:\\dbg\\kd.exe";
const OUT = "C:\\out";
const DUMP = "C:\\dumps\\LiveDump.dmp";
const { reportLines } = require("../../windbg/testlib/report.js");
const seed = require("../../windbg/testlib/seed-dump.js");

// A log as kd.exe writes it for a run: the extension loaded, optionally MEX in .chain,
// and the report WrFastMutex.js prints for the dump.
function log({ mexLoaded, report }) {
    return ["Loading Dump File [" + DUMP + "]", "JavaScript script successfully loaded from 'C:\\out\\WrFastMutex.js'"]
        .concat(mexLoaded === undefined ? [] : ["Extension DLL chain:",
            mexLoaded ? "    C:\\dbg\\winext\\mex.dll: image 18.0.0.0, API 1.0.0, built Mon Jan  1 00:00:00 2024" :
                "    dbghelp: image 10.0.26100.1, API 10.0.6"])
        .concat(report);
}

function analysis({ mex = null, logs, mode, exitCode = 0 }) {
    const fakes = [
        { command: "Test-Administrator", output: [true] },
        { command: "Test-Path", when: { LiteralPath: DUMP }, output: [true] },
        { command: "Resolve-Path", when: { LiteralPath: DUMP }, output: [{ ProviderPath: DUMP }] },
        { command: "Get-Command", when: { Name: "kd.exe" }, output: [{ Path: KD }] },
        { command: "Get-Command", when: { Name: KD }, output: [{ Path: KD }] },
        { command: "Find-TestDriverBuild", output: [{ FullName: "C:\\src\\target\\release\\TestDriver_package\\TestDriver.pdb",
            DirectoryName: "C:\\src\\target\\release\\TestDriver_package", LastWriteTime: "2026-12-02" }] },
        { command: "Test-Path", whenMatch: { LiteralPath: "mex\\.dll$" }, output: [false] },
        { command: "Test-Path", output: [true] },
        { command: "New-Item" },
        { command: "Copy-Item" },
        { command: KD, when: { args: ["-z", DUMP, "-y", "C:\\src\\target\\release\\TestDriver_package", "-logo",
            "testdriver-analysis.log", "-cf", "testdriver-analysis.txt"] }, exitCode, output: [], env: ["_NT_DEBUGGER_EXTENSION_PATH"] },
        { command: KD, exitCode, output: [], env: ["_NT_DEBUGGER_EXTENSION_PATH"] }
    ];
    if (mex) {
        fakes.unshift({ command: "Test-Path", when: { LiteralPath: mex + "\\mex.dll" }, output: [true] });
    }
    for (const [name, lines] of Object.entries(logs)) {
        fakes.unshift({ command: "Get-Content", when: { LiteralPath: OUT + "\\" + name }, output: lines });
    }
    return runScenario({
        script: "Invoke-DumpAnalysis.ps1", env: Object.assign({ LOCALAPPDATA: "C:\\Users\\a\\AppData\\Local",
            _NT_DEBUGGER_EXTENSION_PATH: "D:\\mine" }, ENV),
        run: { parameters: Object.assign({ DumpPath: DUMP, OutputDirectory: OUT }, mode ? { Mode: mode } : {}) }, fakes
    });
}

function kdRuns(r) {
    return r.called(KD);
}

test("no MEX: one kd.exe run on the built-in command file; the log's verdict is the answer", () => {
    const report = reportLines(seed.seedDump(), {});
    const r = analysis({ logs: { "testdriver-analysis.log": log({ report }) } });
    assert.equal(r.error, null);
    assert.equal(kdRuns(r).length, 1);
    assert.equal(kdRuns(r)[0].env._NT_DEBUGGER_EXTENSION_PATH, "D:\\mine", "the user's extension path, unchanged");
    const commandFile = r.files[OUT + "\\testdriver-analysis.txt"];
    assert.deepEqual(commandFile.slice(0, 6), ["$$ Generated by scripts\\Invoke-DumpAnalysis.ps1 for the TestDriver walk-through.",
        ".echo ===== TestDriver analysis, mode built-in", ".symfix+ C:\\Symbols", ".reload", ".load jsprovider.dll",
        ".scriptload WrFastMutex.js"]);
    const builtin = require("node:fs").readFileSync(path.join(__dirname, "..", "..", "windbg", "analyze-builtin.txt"), "utf8")
        .replace(/\n$/, "").split("\n");
    assert.deepEqual(commandFile.slice(6), builtin.concat(["q"]), "the repository's command file, then q");
    const answer = r.host.slice(r.host.indexOf("Answer (from the log):") + 1, -1);
    assert.deepEqual(answer, report.filter((l) => l.startsWith("Verdict: ")).map((l) => "  " + l));
    assert.deepEqual(r.output, [OUT + "\\testdriver-analysis.log"]);
    assert.deepEqual(r.warnings, []);
    const copied = r.called("Copy-Item")[0].named;
    assert.deepEqual([copied.LiteralPath.replace(/\\/g, "/"), copied.Destination],
        [path.join(__dirname, "..", "..", "windbg", "WrFastMutex.js"), OUT + "\\WrFastMutex.js"],
        "the repository's extension, copied beside the command file (.scriptload takes no path with spaces)");
});

test("Find-Mex: looked for in winext, winxp, the debugger's folder, EngineExtensions and _NT_DEBUGGER_EXTENSION_PATH; -MexPath must be mex.dll", () => {
    const r = runScenario({ script: "Invoke-DumpAnalysis.ps1", modules: ["TestDriver.Common.psm1"],
        env: { LOCALAPPDATA: "C:\\L", _NT_DEBUGGER_EXTENSION_PATH: "D:\\a;;D:\\b" },
        call: { function: "Find-Mex", arguments: { Path: "", DebuggerFolder: "C:\\dbg" } },
        fakes: [{ command: "Test-Path", output: [false] }] });
    assert.deepEqual([r.error, r.output], [null, [null]]);
    assert.deepEqual(r.called("Test-Path").map((c) => c.named.LiteralPath), ["C:\\dbg\\winext\\mex.dll",
        "C:\\dbg\\winxp\\mex.dll", "C:\\dbg\\mex.dll", "C:\\L\\dbg\\EngineExtensions\\mex.dll", "D:\\a\\mex.dll",
        "D:\\b\\mex.dll"]);
    const other = runScenario({ script: "Invoke-DumpAnalysis.ps1", modules: ["TestDriver.Common.psm1"],
        call: { function: "Find-Mex", arguments: { Path: "C:\\x\\mex64.dll", DebuggerFolder: "C:\\dbg" } },
        fakes: [{ command: "Test-Path", output: [true] }, { command: "Resolve-Path", output: [{ ProviderPath: "C:\\x\\mex64.dll" }] }] });
    assert.equal(other.error, "-MexPath must name a file called mex.dll (the command files call !mex.di and !mex.t): C:\\x\\mex64.dll");
});

test("MEX found: its folder goes first in _NT_DEBUGGER_EXTENSION_PATH for the run only, loaded by name", () => {
    const folder = "C:\\Users\\a\\AppData\\Local\\dbg\\EngineExtensions";
    const report = reportLines(seed.seedDump(), {});
    const r = analysis({ mex: folder, logs: { "testdriver-analysis.log": log({ mexLoaded: true, report }) } });
    assert.equal(r.error, null);
    assert.equal(kdRuns(r).length, 1);
    assert.equal(kdRuns(r)[0].env._NT_DEBUGGER_EXTENSION_PATH, folder + ";D:\\mine");
    assert.ok(r.host.includes("MEX: " + folder + "\\mex.dll, loaded as \".load mex\" with " + folder +
        " first in _NT_DEBUGGER_EXTENSION_PATH"), r.host.join("\n"));
    const commandFile = r.files[OUT + "\\testdriver-analysis.txt"];
    assert.deepEqual(commandFile.slice(6, 9), [".load mex", ".echo ===== Loaded extensions (mex.dll must be listed)", ".chain"]);
    assert.ok(!commandFile.some((l) => l.includes(folder)), "no path with spaces or folders in the command file");
});

test("MEX found but not loaded (.chain lists no mex.dll): Auto runs again with the built-in commands", () => {
    const folder = "C:\\dbg\\winext";
    const report = reportLines(seed.seedDump(), {});
    const r = analysis({ mex: folder, logs: {
        "testdriver-analysis.log": log({ mexLoaded: false, report: ["The call to LoadLibrary(mex) failed, Win32 error 0n193"] }),
        "testdriver-analysis-builtin.log": log({ report })
    } });
    assert.equal(r.error, null);
    assert.deepEqual(kdRuns(r).map((c) => c.env._NT_DEBUGGER_EXTENSION_PATH), [folder + ";D:\\mine", "D:\\mine"]);
    assert.match(r.warnings[0], /^MEX did not load \(\.chain in C:\\out\\testdriver-analysis\.log lists no mex\.dll\): running again/);
    assert.equal(r.files[OUT + "\\testdriver-analysis-builtin.txt"][1], ".echo ===== TestDriver analysis, mode built-in");
    assert.deepEqual(r.output, [OUT + "\\testdriver-analysis-builtin.log"]);
});

test("-Mode Mex without mex.dll stops before kd.exe runs; an incomplete report is flagged as not a 'no deadlock'", () => {
    const noMex = analysis({ mode: "Mex", logs: {} });
    assert.match(noMex.error, /^Mode Mex: mex\.dll not found/);
    assert.equal(kdRuns(noMex).length, 0);
    const unreadable = reportLines(seed.withSystemThreads(seed.seedDump(), [seed.UNREADABLE_THREAD]), {});
    const r = analysis({ logs: { "testdriver-analysis.log": log({ report: unreadable }) }, exitCode: 1 });
    assert.ok(r.host.some((l) => /^  Incomplete: cannot read 1 thread\(s\)/.test(l)), r.host.join("\n"));
    assert.deepEqual(r.warnings, ["The debugger exited with code 1; read the log.",
        "WrFastMutex.js could not read everything (see above): an incomplete dump or missing nt symbols. " +
        "An empty or partial result here is not a \"no deadlock\" answer."]);
});

test("the answer printed is exactly the extension's answer lines, for every report it can print; " +
    "the warning comes for exactly the incomplete ones", () => {
    const scenarios = [
        [seed.seedDump(), {}, false],
        [seed.cleanDump(), {}, false],
        [seed.cleanDump(), { symbols: "none" }, true],
        [seed.withSystemThreads(seed.seedDump(), [seed.UNREADABLE_THREAD]), {}, true],
        [seed.seedDump(), { unreadable: [seed.MUTEX] }, false],
        [seed.seedDump(), { processesThrowAt: 0, processIndex: "none" }, true]
    ];
    const INCOMPLETE = "WrFastMutex.js could not read everything (see above): an incomplete dump or missing nt symbols. " +
        "An empty or partial result here is not a \"no deadlock\" answer.";
    for (const [dump, options, incomplete] of scenarios) {
        const report = reportLines(dump, options);
        const r = analysis({ logs: { "testdriver-analysis.log": log({ report }) } });
        assert.equal(r.error, null);
        const printed = r.host.slice(r.host.indexOf("Answer (from the log):") + 1, -1);
        const expected = report.filter((l) => /^(Verdict: |No thread is waiting|Cannot tell |Incomplete: )/.test(l));
        assert.ok(expected.length >= 1, "every report has an answer line:\n" + report.join("\n"));
        assert.deepEqual(printed, expected.map((l) => "  " + l), report.join("\n"));
        assert.equal(r.warnings.includes(INCOMPLETE), incomplete, report.join("\n"));
    }
});

test("MEX counts as loaded only for a mex.dll line of .chain, not for its name elsewhere in the log", () => {
    const folder = "C:\\dbg\\winext";
    const report = reportLines(seed.seedDump(), {});
    const notLoaded = [
        ["Extension DLL search Path:", "    C:\\dbg\\winext;C:\\dbg\\mex", "Extension DLL chain:",
            "    C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\SOS.dll: image 4.8.4084.0, API 1.0.0"],
        ["The call to LoadLibrary(mex) failed, Win32 error 0n2"]
    ];
    for (const lines of notLoaded) {
        const r = analysis({ mex: folder, logs: {
            "testdriver-analysis.log": lines.concat(report), "testdriver-analysis-builtin.log": log({ report }) } });
        assert.equal(kdRuns(r).length, 2, lines.join("\n"));
    }
    // the shape of Microsoft's .load page: "<path>: image <version>, API <version>, built <date>"
    const loaded = analysis({ mex: folder, logs: { "testdriver-analysis.log": ["Extension DLL chain:",
        "    C:\\Program Files (x86)\\Windows Kits\\10\\Debuggers\\x64\\winext\\mex.dll: image 18.0.0.0, API 1.0.0, " +
        "built Mon Jan  1 00:00:00 2024"].concat(report) } });
    assert.equal(kdRuns(loaded).length, 1);
});
