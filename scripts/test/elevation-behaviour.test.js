"use strict";
// Every script checks elevation itself, first: not elevated, the four that change the machine
// stop before they ask or change anything, and the analysis only warns and goes on.
const test = require("node:test");
const assert = require("node:assert/strict");
const { runScenario } = require("./lib/pslite.js");

// What may run before the check: the preferences, the shared module's import, the check.
const PREAMBLE = ["Set-StrictMode", "Import-Module", "Export-ModuleMember", "Assert-Administrator", "Test-Administrator"];

const STOPPING = {
    "Initialize-TestVM.ps1": {},
    "Install-TestDriver.ps1": { DriverPath: "C:\\drv\\TestDriver.sys" },
    "New-LiveKernelDump.ps1": { DestinationPath: "C:\\Dumps\\t" },
    "Remove-TestDriver.ps1": { ResetVerifier: true, DisableTestSigning: true, Restart: true }
};

for (const [script, parameters] of Object.entries(STOPPING)) {
    test(script + " not elevated: stops with the elevation message before anything else runs", () => {
        const r = runScenario({ script, run: { parameters }, fakes: [{ command: "Test-Administrator", output: [false] }] });
        assert.equal(r.error, "This script must run elevated: open PowerShell with \"Run as administrator\" and run it again.");
        assert.deepEqual(r.calls.map((c) => c.command).filter((n) => !PREAMBLE.includes(n)), []);
    });
}

test("Invoke-DumpAnalysis.ps1 not elevated: warns that the dump may be unreadable, and goes on", () => {
    const r = runScenario({
        script: "Invoke-DumpAnalysis.ps1", run: { parameters: { DumpPath: "C:\\d.dmp", DebuggerPath: "C:\\nowhere\\kd.exe" } },
        fakes: [
            { command: "Test-Administrator", output: [false] },
            { command: "Test-Path", when: { LiteralPath: "C:\\d.dmp" }, output: [true] },
            { command: "Resolve-Path", output: [{ ProviderPath: "C:\\d.dmp" }] },
            { command: "Test-Path", output: [false] }
        ]
    });
    assert.deepEqual(r.warnings, ["Not elevated: if the dump is readable only by administrators the debugger will fail to open it."]);
    assert.equal(r.error, "Debugger not found: C:\\nowhere\\kd.exe", "the run went on to look for the debugger");
});
