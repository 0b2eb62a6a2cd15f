"use strict";
// TestDriver.Common.psm1's helpers under pslite.py, against fakes of WMI, the file system
// and the native programs: what each returns or throws for given inputs.
const test = require("node:test");
const assert = require("node:assert/strict");
const { runScenario, nativeFake, programsExist } = require("./lib/pslite.js");

function call(name, args, fakes, env) {
    return runScenario({ script: "TestDriver.Common.psm1", call: { function: name, arguments: args }, fakes: fakes || [], env: env || {} });
}

test("Get-DriverService reads Win32_SystemDriver's fixed strings into flags and a plain path", () => {
    const r = call("Get-DriverService", { Name: "TestDrv" }, [{
        command: "Get-CimInstance", when: { ClassName: "Win32_SystemDriver", Filter: "Name='TestDrv'" },
        output: [{ Name: "TestDrv", ServiceType: "Kernel Driver", State: "Running", PathName: "\\??\\C:\\drv\\TestDriver.sys" }]
    }]);
    assert.equal(r.error, null);
    assert.deepEqual(r.output, [{
        Name: "TestDrv", IsKernelDriver: true, ServiceType: "Kernel Driver", State: "Running", Running: true,
        Stopped: false, PathName: "\\??\\C:\\drv\\TestDriver.sys", Path: "C:\\drv\\TestDriver.sys"
    }]);
});

test("Get-DriverService sees a program's service of that name (not a kernel driver), and returns $null for none", () => {
    const service = call("Get-DriverService", { Name: "TestDrv" }, [
        { command: "Get-CimInstance", when: { ClassName: "Win32_SystemDriver" }, output: [] },
        { command: "Get-CimInstance", when: { ClassName: "Win32_Service" },
            output: [{ Name: "TestDrv", ServiceType: "Own Process", State: "Stopped", PathName: "\"C:\\app\\svc.exe\" -k" }] }
    ]);
    assert.equal(service.output[0].IsKernelDriver, false);
    assert.equal(service.output[0].Stopped, true);
    const none = call("Get-DriverService", { Name: "TestDrv" }, [{ command: "Get-CimInstance", output: [] }]);
    assert.deepEqual([none.error, none.output], [null, [null]]);
});

test("Get-DriverService refuses a name that could break the WQL filter, before asking WMI", () => {
    for (const name of ["Test Drv", "x' OR Name='y", ""]) {
        const r = call("Get-DriverService", { Name: name }, [{ command: "Get-CimInstance", output: [] }]);
        assert.match(r.error, /Cannot (validate argument on|bind argument to) parameter 'Name'/, JSON.stringify(name));
        assert.equal(r.called("Get-CimInstance").length, 0);
    }
});

test("ConvertFrom-ImagePath turns the forms WMI reports into a file path", () => {
    const env = { SystemRoot: "C:\\Windows" };
    const cases = [
        ["\\??\\C:\\drv\\TestDriver.sys", "C:\\drv\\TestDriver.sys"],
        ["\\SystemRoot\\System32\\drivers\\TestDriver.sys", "C:\\Windows\\System32\\drivers\\TestDriver.sys"],
        ["\\systemroot\\x.sys", "C:\\Windows\\x.sys"],
        ["System32\\DRIVERS\\TestDriver.sys", "C:\\Windows\\System32\\DRIVERS\\TestDriver.sys"],
        ["  \"C:\\drv\\TestDriver.sys\" ", "C:\\drv\\TestDriver.sys"],
        ["", ""]
    ];
    for (const [given, expected] of cases) {
        assert.deepEqual(call("ConvertFrom-ImagePath", { ImagePath: given }, [], env).output, [expected], given);
    }
});

test("Test-TestSigningActive reads TESTSIGNING from the loader's start options in the registry", () => {
    for (const [options, active] of [[" TESTSIGNING  NOEXECUTE=OPTIN", true], [" NOEXECUTE=OPTIN", false]]) {
        const r = call("Test-TestSigningActive", {}, [{ command: "Get-ItemProperty",
            when: { Path: "HKLM:\\SYSTEM\\CurrentControlSet\\Control", Name: "SystemStartOptions" },
            output: [{ SystemStartOptions: options }] }]);
        assert.deepEqual([r.error, r.output], [null, [active]], options);
    }
});

test("Invoke-NativeCommand returns the exit code and the output lines, whatever the code", () => {
    const r = call("Invoke-NativeCommand", { FilePath: "sc.exe", ArgumentList: ["query", "x"] },
        [nativeFake("sc.exe", ["query", "x"], 1060, ["[SC] EnumQueryServicesStatus:OpenService FAILED 1060:"])]
            .concat(programsExist(["sc.exe"])));
    assert.equal(r.error, null);
    assert.deepEqual(r.output, [{ ExitCode: 1060, Output: ["[SC] EnumQueryServicesStatus:OpenService FAILED 1060:"] }]);
});

test("Invoke-NativeCommand throws for a program that is not there, or that did not start (no exit code)", () => {
    const missing = call("Invoke-NativeCommand", { FilePath: "nosuch.exe" }, [{ command: "Get-Command", output: [] }]);
    assert.equal(missing.error, "nosuch.exe was not found on PATH.");
    const silent = call("Invoke-NativeCommand", { FilePath: "sc.exe", ArgumentList: ["x"] },
        [{ command: "sc.exe", output: [] }].concat(programsExist(["sc.exe"])));
    assert.equal(silent.error, "Could not run sc.exe: it did not start, so it set no exit code.");
});

test("Find-TestDriverBuild finds the cargo make packages of both profiles and the target triple, newest first", () => {
    const root = "C:\\src\\TestDriver";
    const builds = {
        "target\\release\\TestDriver_package": "2026-12-01T10:00:00",
        "target\\debug\\TestDriver_package": "2026-12-02T10:00:00",
        "target\\x86_64-pc-windows-msvc\\release\\TestDriver_package": "2026-11-30T10:00:00"
    };
    const fakes = [];
    for (const [folder, time] of Object.entries(builds)) {
        const file = root + "\\" + folder + "\\TestDriver.sys";
        fakes.push({ command: "Test-Path", when: { LiteralPath: file }, output: [true] });
        fakes.push({ command: "Get-Item", when: { LiteralPath: file }, output: [{ FullName: file, LastWriteTime: time }] });
    }
    fakes.push({ command: "Test-Path", output: [false] });
    const r = call("Find-TestDriverBuild", { RepositoryRoot: root, FileName: "TestDriver.sys" }, fakes);
    assert.equal(r.error, null);
    assert.deepEqual(r.output.map((f) => f.FullName), [
        root + "\\target\\debug\\TestDriver_package\\TestDriver.sys",
        root + "\\target\\release\\TestDriver_package\\TestDriver.sys",
        root + "\\target\\x86_64-pc-windows-msvc\\release\\TestDriver_package\\TestDriver.sys"
    ]);
    const looked = r.called("Test-Path").map((c) => c.named.LiteralPath);
    assert.equal(looked.length, 8, "2 target folders x 2 profiles x 2 package folder names: " + looked.join(", "));
    const bad = call("Find-TestDriverBuild", { RepositoryRoot: root, FileName: "TestDriver.exe" }, fakes);
    assert.match(bad.error, /does not belong to the set "TestDriver\.sys,TestDriver\.pdb"/);
});
