"use strict";
// Initialize-TestVM.ps1 under pslite.py against fakes of the registry, the BCD WMI provider,
// Secure Boot, BitLocker and the native programs: what it changes, in which order.
const test = require("node:test");
const assert = require("node:assert/strict");
const { runScenario, nativeFake, programsExist } = require("./lib/pslite.js");

const CURRENT = "{fa926493-6f1c-4193-a414-58f0b2456d1e}";

// active: TESTSIGNING in this boot's start options; bcd: what GetElement answers
// ("on", "off" = ReturnValue false, "refused" = an exception); secureBoot: "on", "off" or "bios".
function machine({ active = false, bcd = "off", secureBoot = "off", bitLocker = "Off", folders = true } = {}) {
    const fakes = [
        { command: "Test-Administrator", output: [true] },
        { command: "Get-CimInstance", when: { ClassName: "Win32_OperatingSystem" }, output: [{ Caption: "Windows 11 Pro", BuildNumber: "26100" }] },
        { command: "Get-ItemProperty", output: [{ SystemStartOptions: active ? " TESTSIGNING NOEXECUTE=OPTIN" : " NOEXECUTE=OPTIN" }] },
        { command: "New-CimInstance", output: [{ Id: CURRENT }] },
        bcd === "refused" ? { command: "Invoke-CimMethod", throw: "Access denied" } :
            { command: "Invoke-CimMethod", output: [{ ReturnValue: bcd === "on", Element: { Boolean: bcd === "on" } }] },
        secureBoot === "bios" ? { command: "Confirm-SecureBootUEFI", throw: "Cmdlet not supported on this platform" } :
            { command: "Confirm-SecureBootUEFI", output: [secureBoot === "on"] },
        { command: "Get-Command", when: { Name: "Get-BitLockerVolume" }, output: bitLocker ? [{ Name: "Get-BitLockerVolume" }] : [] },
        { command: "Get-BitLockerVolume", output: [{ ProtectionStatus: bitLocker }] },
        { command: "Suspend-BitLocker", output: [{}] },
        nativeFake("bcdedit.exe", ["/set", "testsigning", "on"], 0, ["The operation completed successfully."]),
        nativeFake("verifier.exe", ["/flags", "0x20", "/driver", "TestDriver.sys"], 2, ["New verifier settings:"]),
        nativeFake("verifier.exe", ["/querysettings"], 0, ["Special pool: Disabled"]),
        { command: "Test-Path", output: [folders] },
        { command: "Get-ChildItem", output: [] },
        { command: "New-Item", output: [{}] },
        { command: "Restart-Computer" }
    ];
    return fakes.concat(programsExist(["bcdedit.exe", "verifier.exe"]));
}

function initialize(options, parameters) {
    return runScenario({
        script: "Initialize-TestVM.ps1", run: { parameters: parameters || {} }, env: { SystemDrive: "C:", COMPUTERNAME: "TESTVM" },
        statics: { "[Environment]::Is64BitOperatingSystem": true }, fakes: machine(options)
    });
}

// The changes, in order: BitLocker suspended, native programs run.
function changes(r) {
    return r.calls.filter((c) => ["Suspend-BitLocker", "bcdedit.exe", "verifier.exe", "Restart-Computer"].includes(c.command))
        .map((c) => [c.command].concat(c.positional, Object.keys(c.named).map((k) => "-" + k + " " + c.named[k])).join(" "));
}

test("test signing off, BitLocker on: BitLocker is suspended for one reboot before bcdedit changes the boot", () => {
    const r = initialize({ bitLocker: "On" });
    assert.equal(r.error, null);
    assert.deepEqual(changes(r), ["Suspend-BitLocker -MountPoint C: -RebootCount 1", "bcdedit.exe /set testsigning on"]);
    assert.match(r.warnings[0], /^BitLocker protects C:: the boot configuration change \(bcdedit\) would make the next boot ask/);
    assert.ok(r.host.includes("REBOOT NEEDED: run Restart-Computer, then continue with scripts\\Install-TestDriver.ps1."));
});

test("the BCD element asked for is {current}'s AllowPrereleaseSignatures (0x16000049)", () => {
    const r = initialize({});
    assert.deepEqual(r.called("New-CimInstance")[0].named.Property, { Id: CURRENT, StoreFilePath: "" });
    assert.deepEqual(r.called("Invoke-CimMethod")[0].named.Arguments, { Type: 0x16000049 });
});

test("Secure Boot on: BitLocker is still suspended first (turning Secure Boot off changes the boot too), then it stops", () => {
    const r = initialize({ secureBoot: "on", bitLocker: "On" });
    assert.match(r.error, /^Secure Boot is on: bcdedit cannot turn test signing on while it is/);
    assert.deepEqual(changes(r), ["Suspend-BitLocker -MountPoint C: -RebootCount 1"]);
    assert.match(r.warnings[0], /turning Secure Boot off would make the next boot ask for the BitLocker recovery key/);
});

test("the BCD WMI provider refuses (Backup/Restore privileges): bcdedit is run anyway, and it says why", () => {
    const r = initialize({ bcd: "refused", secureBoot: "bios" });
    assert.equal(r.error, null);
    assert.ok(r.host.includes("Test signing: the boot configuration could not be read through WMI; setting it (bcdedit is idempotent)."));
    assert.deepEqual(changes(r), ["bcdedit.exe /set testsigning on"]);
});

test("configured but not active: no bcdedit, a reboot is asked for; active: nothing to change", () => {
    const configured = initialize({ bcd: "on" });
    assert.deepEqual(changes(configured), []);
    assert.match(configured.warnings[0], /^Test signing is configured but not active yet: reboot/);
    const active = initialize({ active: true, bcd: "on" }, { Restart: true });
    assert.deepEqual(changes(active), [], "no reboot either");
    assert.ok(active.host.includes("Test signing: active in this boot."));
    assert.equal(active.called("Get-BitLockerVolume").length, 0, "BitLocker is not asked about when nothing changes");
});

test("-EnableDriverVerifier: deadlock detection (0x20) for TestDriver.sys only; 0x1000 is announced as not confirmed", () => {
    const r = initialize({ active: true }, { EnableDriverVerifier: true, Restart: true });
    assert.equal(r.error, null);
    assert.deepEqual(changes(r), ["verifier.exe /flags 0x20 /driver TestDriver.sys", "verifier.exe /querysettings", "Restart-Computer -Force true"]);
    const line = r.host.find((l) => l.startsWith("Driver Verifier: deadlock detection set for TestDriver.sys"));
    assert.match(line, /Expected \(not confirmed\): bug check 0xC4 with parameter 1 = 0x1000, which Microsoft's "Bug Check 0xC4" page lists as a self-deadlock/);
});

test("the demo's folders: created when missing, only reported when present", () => {
    const created = initialize({ active: true, folders: false });
    assert.deepEqual(created.called("New-Item").map((c) => c.named.Path), ["C:\\Temp", "C:\\Temp2"]);
    const present = initialize({ active: true, folders: true });
    assert.deepEqual(present.called("New-Item"), []);
    assert.ok(present.host.includes("Folder C:\\Temp: exists (0 item(s))."));
});
