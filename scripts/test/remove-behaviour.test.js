"use strict";
// Remove-TestDriver.ps1 run under pslite.py against fakes of WMI, the native programs and
// Restart-Computer: what it runs, in which order, and where it stops.
const test = require("node:test");
const assert = require("node:assert/strict");
const { runScenario, nativeFake, programsExist } = require("./lib/pslite.js");

const LOADED = { Name: "TestDrv", ServiceType: "Kernel Driver", State: "Running", PathName: "\\??\\C:\\drv\\TestDriver.sys" };

// The machine: elevated or not, what WMI says about TestDrv, and what sc.exe delete answers.
function machine({ admin = true, driver = LOADED, service = null, deleteCode = 0 } = {}) {
    return [
        { command: "Test-Administrator", output: [admin] },
        { command: "Get-CimInstance", when: { ClassName: "Win32_SystemDriver" }, output: driver ? [driver] : [] },
        { command: "Get-CimInstance", when: { ClassName: "Win32_Service" }, output: service ? [service] : [] },
        nativeFake("sc.exe", ["delete", "TestDrv"], deleteCode,
            deleteCode === 1072 ? ["[SC] DeleteService FAILED 1072:", "", "The specified service has been marked for deletion."] :
                deleteCode === 0 ? ["[SC] DeleteService SUCCESS"] : ["[SC] OpenService FAILED " + deleteCode + ":"]),
        nativeFake("verifier.exe", ["/reset"], 2, ["The system reboot is required for the changes to take effect."]),
        nativeFake("bcdedit.exe", ["/set", "testsigning", "off"], 0, ["The operation completed successfully."]),
        { command: "Restart-Computer" }
    ].concat(programsExist(["sc.exe", "verifier.exe", "bcdedit.exe"]));
}

function run(parameters, options, extra) {
    return runScenario(Object.assign({
        script: "Remove-TestDriver.ps1", run: { parameters }, env: { COMPUTERNAME: "TESTVM" }, fakes: machine(options)
    }, extra || {}));
}

const NATIVE = ["sc.exe", "verifier.exe", "bcdedit.exe"];
function nativeRuns(r) {
    return r.calls.filter((c) => NATIVE.includes(c.command)).map((c) => [c.command].concat(c.positional).join(" "));
}

const ALL = { ResetVerifier: true, DisableTestSigning: true, Restart: true };

test("first run on the loaded driver: deletes the service, resets Verifier, turns test signing off, reboots", () => {
    const r = run(ALL);
    assert.equal(r.error, null);
    assert.deepEqual(nativeRuns(r), ["sc.exe delete TestDrv", "verifier.exe /reset", "bcdedit.exe /set testsigning off"]);
    assert.equal(r.called("Restart-Computer").length, 1);
    assert.match(r.warnings[0], /TestDrv is loaded \(state Running\)\. It is NOT stopped here/);
});

test("second run before the reboot: sc.exe delete's 1072 is 'already marked for deletion', and the rest still runs", () => {
    const r = run(ALL, { deleteCode: 1072 });
    assert.equal(r.error, null);
    assert.deepEqual(nativeRuns(r), ["sc.exe delete TestDrv", "verifier.exe /reset", "bcdedit.exe /set testsigning off"]);
    assert.ok(r.host.includes("Service TestDrv: already marked for deletion (sc.exe delete: 1072, " +
        "ERROR_SERVICE_MARKED_FOR_DELETE). Windows removes it at the reboot."), r.host.join("\n"));
    assert.equal(r.called("Restart-Computer").length, 1, "the reboot that finishes the deletion");
});

test("any other sc.exe delete failure stops the run before bcdedit and the reboot", () => {
    const r = run(ALL, { deleteCode: 5 });
    assert.equal(r.error, "sc.exe delete TestDrv failed with exit code 5.");
    assert.deepEqual(nativeRuns(r), ["sc.exe delete TestDrv"]);
    assert.equal(r.called("Restart-Computer").length, 0);
});

test("a service named TestDrv that is not a kernel driver is refused before sc.exe runs", () => {
    const r = run(ALL, { driver: null, service: { Name: "TestDrv", ServiceType: "Own Process", State: "Running", PathName: "C:\\x.exe" } });
    assert.match(r.error, /^A service named TestDrv exists but is not a kernel driver \(Own Process\): it is not TestDriver's/);
    assert.deepEqual(nativeRuns(r), []);
});

test("nothing installed: no sc.exe; the boot changes still run and ask for the reboot", () => {
    const r = run({ DisableTestSigning: true }, { driver: null });
    assert.equal(r.error, null);
    assert.ok(r.host.includes("Service TestDrv: not installed, nothing to delete."));
    assert.deepEqual(nativeRuns(r), ["bcdedit.exe /set testsigning off"]);
    assert.equal(r.called("Restart-Computer").length, 0, "no -Restart");
    assert.ok(r.host.includes("REBOOT NEEDED to finish the cleanup: Restart-Computer."), r.host.join("\n"));
});

test("-WhatIf changes nothing: no native program, no reboot", () => {
    const r = run(ALL, {}, { whatIf: true });
    assert.equal(r.error, null);
    assert.deepEqual(nativeRuns(r), []);
    assert.equal(r.called("Restart-Computer").length, 0);
    // each change is offered, the reboot too (the loaded driver needs one), and none is made
    assert.deepEqual(r.shouldProcess.map((s) => s[1]), ["sc.exe delete TestDrv", "verifier /reset",
        "bcdedit /set testsigning off", "Restart-Computer"]);
});

test("not elevated: stops before WMI or any program is asked", () => {
    const r = run(ALL, { admin: false });
    assert.match(r.error, /must run elevated/);
    assert.equal(r.called("Get-CimInstance").length, 0);
    assert.deepEqual(nativeRuns(r), []);
});
