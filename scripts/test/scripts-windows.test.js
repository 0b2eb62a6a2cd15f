"use strict";
// Static checks of what the scripts must do on a real Windows that this machine
// cannot run: no parsing of translated tool output, builds found in both cargo
// make profiles, MEX loaded by name with an automatic fallback, BitLocker
// suspended before boot changes, the debugger's answer lines matched against
// what windbg/WrFastMutex.js really prints. PowerShell does not run here, so
// these read the scripts' text; where a script and the extension must agree
// (the answer lines), both sides are exercised.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { SCRIPTS, readScript, functionBody } = require("./lib/ps-text.js");
const { reportLines } = require("../../windbg/testlib/report.js");
const seed = require("../../windbg/testlib/seed-dump.js");

// The text without comment-based help and # comments (strings kept).
function withoutComments(text) {
    return text.replace(/<#[\s\S]*?#>/g, "").replace(/^\s*#.*$/gm, "");
}

// A single-quoted PowerShell string assigned to $name.
function psString(text, name) {
    const match = text.match(new RegExp("^\\$" + name + " = '((?:[^']|'')*)'$", "m"));
    assert.ok(match, "$" + name + " = '...'");
    return match[1].replace(/''/g, "'");
}

// .NET inline options (?im) -> JavaScript flags.
function dotNetRegex(pattern) {
    const inline = pattern.match(/^\(\?([imsx]+)\)/);
    return inline ? new RegExp(pattern.slice(inline[0].length), inline[1]) : new RegExp(pattern);
}

const scripts = fs.readdirSync(SCRIPTS).filter((f) => /\.ps1$|\.psm1$/.test(f));

test("no script reads the translated text of sc.exe, bcdedit or the storage subsystem's name", () => {
    for (const file of scripts) {
        const code = withoutComments(readScript(file));
        assert.doesNotMatch(code, /STATE\\s|'STATE|STATE\s+:/, file + ": sc.exe STATE text");
        assert.doesNotMatch(code, /-eq 'Yes'|testsigning\\s\+\(/i, file + ": bcdedit Yes/No text");
        assert.doesNotMatch(code, /'\/enum'/, file + ": bcdedit /enum output");
        assert.doesNotMatch(code, /FriendlyName -like|'Windows Storage/, file + ": the storage subsystem's English name");
        assert.doesNotMatch(code, /@\('query'/, file + ": sc.exe query output");
    }
});

test("Invoke-DumpAnalysis points the debugger at the symbols of every cargo make build it finds", () => {
    const analysis = readScript("Invoke-DumpAnalysis.ps1");
    assert.match(analysis, /Find-TestDriverBuild -RepositoryRoot \$repoRoot -FileName 'TestDriver\.pdb'/);
    assert.match(analysis, /Write-Host "Driver symbols: \$\(\$pdbs\[0\]\.FullName\)/);
    assert.doesNotMatch(withoutComments(analysis), /'target\\release'/, "no fixed release-only symbol folder");
});

test("Invoke-DumpAnalysis: MEX by name, its folder always through _NT_DEBUGGER_EXTENSION_PATH, Auto falls back", () => {
    const text = readScript("Invoke-DumpAnalysis.ps1");
    const code = withoutComments(text);
    assert.doesNotMatch(code, /-match '\\s'/, "no space check on mex.dll's path");
    assert.doesNotMatch(code, /'\.load ' \+/, "no path after .load");
    assert.match(functionBody(text, "Write-CommandFile"), /\$lines\.Add\('\.load mex'\)\n\s*\$lines\.Add\('\.echo [^']*'\)\n\s*\$lines\.Add\('\.chain'\)/);
    const find = functionBody(text, "Find-Mex");
    for (const folder of ["'winext'", "'winxp'", "'dbg\\EngineExtensions'", "$env:_NT_DEBUGGER_EXTENSION_PATH -split ';'"]) {
        assert.ok(find.includes(folder), "Find-Mex looks on the extension search path: " + folder);
    }
    assert.match(find, /-ne 'mex\.dll'\) \{\n\s*throw/, "-MexPath must be mex.dll, the name .load and !mex.* use");
    const invoke = functionBody(text, "Invoke-Debugger");
    assert.match(invoke, /\$exitCode = \$null\n/, "$exitCode initialised");
    assert.ok(invoke.indexOf("$exitCode = $null") < invoke.indexOf("try {"));
    assert.match(invoke, /try \{[\s\S]*\$env:_NT_DEBUGGER_EXTENSION_PATH = [\s\S]*Invoke-NativeCommand -FilePath \$Debugger[\s\S]*finally \{\n\s*\$env:_NT_DEBUGGER_EXTENSION_PATH = \$previousExtensionPath/,
        "the variable is set for the run and restored whatever happens");
    // the folder mex.dll was found in always goes on the path for the run, even one the debugger
    // might search itself (the SDK's kd.exe need not know %LOCALAPPDATA%\dbg\EngineExtensions)
    assert.doesNotMatch(code, /OnSearchPath/, "no folder is assumed to be on the debugger's own search path");
    assert.match(code, /\$mexFolder = ''\nif \(\$useMex\) \{\n\s*\$mexFolder = \$mex\.Folder\n/,
        "with MEX, its folder is always given to Invoke-Debugger");
    assert.match(code, /-WorkingFolder \$OutputDirectory -ExtensionFolder \$mexFolder\n/);
    // the first run passes that folder to Invoke-AnalysisRun, which hands it to Invoke-Debugger
    assert.match(code, /\$result = Invoke-AnalysisRun [^\n]*-UseMex \$useMex [^\n]*`\n(?:[^\n]*`\n)*\s*-WorkingFolder \$OutputDirectory -ExtensionFolder \$mexFolder\n/);
    assert.match(functionBody(text, "Invoke-AnalysisRun"),
        /Invoke-Debugger -Debugger \$Debugger -Arguments \$Run\.Arguments -WorkingFolder \$WorkingFolder -ExtensionFolder \$ExtensionFolder\n/);
    assert.match(invoke, /if \(\$ExtensionFolder\) \{\n\s*\$env:_NT_DEBUGGER_EXTENSION_PATH = \(@\(\$ExtensionFolder, \$previousExtensionPath\)/,
        "first in the variable, before what the user had");
    assert.match(code, /if \(\$useMex -and -not \(\(\$text -join "`n"\) -match \$MEX_LOADED_PATTERN\)\) \{\n\s*if \(\$Mode -eq 'Auto'\) \{[\s\S]*?-UseMex \$false/,
        "Auto runs again with the built-in commands when MEX did not load");
    assert.match(code, /default \{ \$useMex = \(\$null -ne \$mex\) \}/, "Auto without mex.dll: built-in, no error");
});

test("Invoke-DumpAnalysis's .chain check matches a loaded mex.dll and nothing else", () => {
    const loaded = dotNetRegex(psString(readScript("Invoke-DumpAnalysis.ps1"), "MEX_LOADED_PATTERN"));
    // the shape of Microsoft's .load page: "<path>: image <version>, API <version>, built <date>"
    assert.match("Extension DLL chain:\n    C:\\Program Files (x86)\\Windows Kits\\10\\Debuggers\\x64\\winext\\mex.dll: " +
        "image 18.0.0.0, API 1.0.0, built Mon Jan  1 00:00:00 2024\n", loaded);
    assert.doesNotMatch("Extension DLL search Path:\n    C:\\dbg\\winext;C:\\dbg\\mex\n" +
        "Extension DLL chain:\n    C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\SOS.dll: image 4.8.4084.0, API 1.0.0\n",
    loaded);
    assert.doesNotMatch("The call to LoadLibrary(mex) failed, Win32 error 0n2\n", loaded);
});

// Every report windbg/WrFastMutex.js can print, from the fake data model.
function reports() {
    const scenarios = [
        [seed.seedDump(), {}],
        [seed.cleanDump(), {}],
        [seed.cleanDump(), { symbols: "none" }],
        [seed.withSystemThreads(seed.seedDump(), [seed.UNREADABLE_THREAD]), {}],
        [seed.seedDump(), { unreadable: [seed.MUTEX] }],
        [seed.seedDump(), { processesThrowAt: 0, processIndex: "none" }]
    ];
    return scenarios.map(([dump, options]) => reportLines(dump, options));
}

test("Invoke-DumpAnalysis picks exactly the extension's answer lines, and warns on the incomplete ones", () => {
    const text = readScript("Invoke-DumpAnalysis.ps1");
    const answer = dotNetRegex(psString(text, "ANSWER_PATTERN"));
    const warn = text.match(/\$_\.Line -match '([^']+)'/);
    assert.ok(warn, "the incomplete-answer check");
    const incomplete = new RegExp(warn[1]);
    const picked = [];
    for (const lines of reports()) {
        const answers = lines.filter((l) => answer.test(l));
        assert.ok(answers.length >= 1, "every report has an answer line:\n" + lines.join("\n"));
        for (const l of lines) {
            const isAnswer = /^(Verdict: |No thread is waiting|Cannot tell |Incomplete: )/.test(l);
            assert.equal(answer.test(l), isAnswer, "answer or not: " + l);
        }
        picked.push(answers);
    }
    assert.match(picked[0][0], /^Verdict: the owner ffff9709`ac20e040 is itself waiting on the fast mutex it owns/);
    assert.deepEqual(picked[1], ["No thread is waiting with reason WrFastMutex (34)."]);
    assert.match(picked[2][0], /^Cannot tell whether any thread waits on a fast mutex: cannot read 7 thread\(s\)/);
    assert.match(picked[3][1], /^Incomplete: cannot read 1 thread\(s\)/);
    assert.match(picked[4][0], /^Verdict: cannot read the fast mutex/);
    assert.match(picked[5][0], /^Cannot tell .*System process \(PID 4\).* was not found/);
    // the warning fires for exactly the reports that could not read everything
    assert.deepEqual(picked.map((a) => a.some((l) => incomplete.test(l))), [false, false, true, true, false, true]);
});

test("Remove-TestDriver explains sc stop as freed memory under waiting threads, not an immediate crash", () => {
    const text = readScript("Remove-TestDriver.ps1");
    assert.doesNotMatch(text, /crashes the machine/);
    assert.match(text, /does not crash at once/);
    assert.match(text, /undefined behaviour/);
    assert.match(text, /IoDeleteDevice frees the\s+device object and with it the device extension that holds the FAST_MUTEX/);
});
