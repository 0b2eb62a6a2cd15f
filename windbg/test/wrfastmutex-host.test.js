"use strict";
// windbg/WrFastMutex.js run end to end against a fake WinDbg data model
// (windbg/testlib/fake-host.js) that encodes the seed's dump, and against the
// ways a real dump and the real data model fail: unreadable pages, lazy
// iterators that throw part-way, missing nt symbols, getModuleType giving null.
const test = require("node:test");
const assert = require("node:assert/strict");
const { makeFrame, FakeInt64, withHost } = require("../testlib/fake-host.js");
const seed = require("../testlib/seed-dump.js");
const m = require("../WrFastMutex.js");

function output(fake) {
    return fake.log.join("");
}

const NO_WAITER = "No thread is waiting with reason WrFastMutex (34).\n";
const SEED_ROW = "System    4 ffff9709ac20e040 dd8 Waiting WrFastMutex ffff9709ac3d4f20 ffff9709ac20e040 " +
    "nt!ExAcquireFastMutex+0x122 TestDriver+0x113d\n";
const SELF_DEADLOCK = "Verdict: the owner ffff9709`ac20e040 is itself waiting on the fast mutex it owns";

// The report must never claim "nobody waits" when something could not be read.
function assertCannotTell(out, why) {
    assert.ok(!out.includes("No thread is waiting"), "a false 'no deadlock':\n" + out);
    assert.match(out, /^Cannot tell whether any thread waits on a fast mutex: /m);
    assert.ok(out.includes(why), "the reason '" + why + "' is given:\n" + out);
    assert.match(out, /This is not a "no deadlock" answer: check the nt symbols .* or take a Full live kernel memory dump/);
}

test("initializeScript registers API 1.2 (as Microsoft's samples) and the two aliases", () => {
    withHost(seed.seedDump(), {}, () => {
        const registrations = m.initializeScript();
        assert.deepEqual(registrations.map((r) => r.kind), ["apiVersionSupport", "functionAlias", "functionAlias"]);
        assert.deepEqual([registrations[0].major, registrations[0].minor], [1, 2]);
        assert.equal(registrations[1].name, "WrFastMutexJs");
        assert.equal(registrations[1].fn, m.WrFastMutexJs);
        assert.equal(registrations[2].name, "WrFastMutexWalk");
        assert.equal(registrations[2].fn, m.WrFastMutexWalk);
    });
});

test("hostValueToHex reads Int64 (with or without 0x), pointers and numbers", () => {
    assert.equal(m.hostValueToHex(new FakeInt64("ffff9709ac20e040")), "ffff9709ac20e040");
    assert.equal(m.hostValueToHex(new FakeInt64("ffff9709ac20e040", "bare")), "ffff9709ac20e040");
    assert.equal(m.hostValueToHex({ address: new FakeInt64("ffff9709ac3d4f38") }), "ffff9709ac3d4f38");
    assert.equal(m.hostValueToHex(0x1000), "0000000000001000");
    assert.throws(() => m.hostValueToHex(undefined), /no value/);
    // a kernel address cannot become a JavaScript number: the fake Int64 throws like the real one
    assert.throws(() => Number(new FakeInt64("ffff9709ac20e040")), /loses precision/);
});

for (const style of ["0x", "bare"]) {
    test(`!WrFastMutexJs on the seed dump prints the table and returns two rows (Int64 style ${style})`, () => {
        withHost(seed.seedDump(), { int64Style: style }, (fake) => {
            const rows = m.WrFastMutexJs();
            assert.equal(rows.length, 2);
            assert.equal(String(rows[0]),
                "ffff9709ac20e040 waits on fast mutex ffff9709ac3d4f20 owned by ffff9709ac20e040");
            assert.equal(String(rows[1]),
                "ffff9709ab278040 waits on fast mutex ffff9709ac3d4f20 owned by ffff9709ac20e040");
            assert.equal(rows[1].tid, 0xc80);
            assert.equal(rows[0].count, 8);
            assert.equal(rows[0].contention, 2);
            assert.equal(rows[0].oldIrql, 0);
            const out = output(fake);
            assert.ok(out.includes(SEED_ROW), out);
            assert.ok(out.includes("Count: 2\n"));
            assert.ok(out.includes("   Owner      : ffff9709`ac20e040\n"));
            assert.ok(out.includes(SELF_DEADLOCK));
            assert.ok(!out.includes("Incomplete") && !out.includes("Cannot tell"), out);
            // the fast mutex was read through createTypedObject("nt", "_FAST_MUTEX") at event - 0x18,
            // its fields from the fake's memory, no raw read needed
            assert.deepEqual(fake.typedReads, ["ffff9709ac3d4f20"]);
            assert.deepEqual(fake.rawReads, []);
        });
    });
}

test("!WrFastMutexJs with nobody waiting and everything readable: the one 'no waiter' answer", () => {
    withHost(seed.cleanDump(), {}, (fake) => {
        const rows = m.WrFastMutexJs();
        assert.deepEqual(rows, []);
        assert.equal(output(fake), NO_WAITER);
        assert.deepEqual(fake.typedReads, []);
    });
});

test("one unreadable KTHREAD beside the waiters: the table stays, an Incomplete line says what is missing", () => {
    const dump = seed.withSystemThreads(seed.seedDump(), [seed.UNREADABLE_THREAD]);
    withHost(dump, {}, (fake) => {
        const rows = m.WrFastMutexJs();
        assert.equal(rows.length, 2);
        const out = output(fake);
        assert.ok(out.includes(SEED_ROW) && out.includes(SELF_DEADLOCK), out);
        assert.match(out, /\nIncomplete: cannot read 1 thread\(s\)\. Waiters among what could not be read are missing above: /);
    });
});

test("no nt symbols: every KernelObject throws, getModuleType gives null; never 'No thread is waiting'", () => {
    // the seed's deadlock (9 threads) and the clean machine (7) look the same without symbols
    for (const [dump, threads] of [[seed.cleanDump(), 7], [seed.seedDump(), 9]]) {
        withHost(dump, { symbols: "none" }, (fake) => {
            const rows = m.WrFastMutexJs();
            assert.deepEqual(rows, []);
            assertCannotTell(output(fake), "cannot read " + threads + " thread(s); no thread could be read at all");
        });
    }
});

test("getModuleType returns null for _FAST_MUTEX: offset 0x18 and raw reads give the seed's fields", () => {
    withHost(seed.seedDump(), { symbols: "no-fast-mutex-type" }, (fake) => {
        assert.equal(m.eventOffsetFromSymbols(), 0x18);
        const rows = m.WrFastMutexJs();
        assert.equal(rows.length, 2);
        assert.equal(rows[0].count, 8);
        assert.equal(rows[0].contention, 2);
        assert.equal(rows[0].owner, seed.OWNER);
        assert.ok(output(fake).includes(SELF_DEADLOCK), output(fake));
        assert.deepEqual(fake.typedReads, []);
        // Count (signed 32 bits), Owner (64), Contention, OldIrql at the seed's offsets
        assert.deepEqual(fake.rawReads, [
            ["ffff9709ac3d4f20", 1, 4], ["ffff9709ac3d4f28", 1, 8], ["ffff9709ac3d4f30", 1, 4], ["ffff9709ac3d4f50", 1, 4]
        ]);
    });
});

test("the fast mutex's page is not in the dump: waiters still listed, the verdict says it cannot read it", () => {
    withHost(seed.seedDump(), { unreadable: [seed.MUTEX] }, (fake) => {
        const rows = m.WrFastMutexJs();
        assert.equal(rows.length, 2);
        assert.equal(rows[0].owner, null);
        assert.match(rows[0].mutexReadError, /Unable to read memory at Address 0xffff9709ac3d4f20.*; raw read: Unable to read memory/);
        assert.equal(String(rows[0]), "ffff9709ac20e040 waits on fast mutex ffff9709ac3d4f20 owned by ?");
        const out = output(fake);
        assert.ok(out.includes("ffff9709ac3d4f20 ?                nt!ExAcquireFastMutex+0x122"), out);
        assert.ok(out.includes("   Count      : ? (unreadable)\n"), out);
        assert.match(out, /Verdict: cannot read the fast mutex ffff9709`ac3d4f20 \(.*\): 2 thread\(s\) wait on it, but its owner, Count and Contention are unknown\. Its page is missing from the dump: take a Full live kernel memory dump/);
        assert.ok(!out.includes("self-deadlock"), out);
    });
    // the walk-through still runs: the dt shows the debugger's own error on Windows
    withHost(seed.seedDump(), { unreadable: [seed.MUTEX] }, (fake) => {
        m.WrFastMutexWalk();
        assert.deepEqual(fake.commands, [
            "!thread ffff9709ac20e040",
            ".thread ffff9709ac20e040",
            ".frame /r 0n5",
            "dt nt!_FAST_MUTEX ffff9709ac3d4f20",
            "!thread ffff9709ab278040",
            ".thread"
        ]);
    });
});

test("the process list throws on its first step: System, looked up by PID, is still read", () => {
    for (const processIndex of ["getValueAt", "bracket"]) {
        withHost(seed.seedDump(), { processesThrowAt: 0, processIndex }, (fake) => {
            const rows = m.WrFastMutexJs();
            assert.equal(rows.length, 2, processIndex);
            const out = output(fake);
            assert.ok(out.includes(SELF_DEADLOCK), out);
            assert.match(out, /\nIncomplete: the process list stopped after 0 process\(es\) \(Unable to read memory at Address 0xffffdead00000000\)\. /);
        });
    }
});

test("the fake's Processes is indexed as obj[i] by default, as Microsoft's Indexability says", () => {
    withHost(seed.seedDump(), {}, (fake) => {
        const processes = host.currentSession.Processes;
        assert.equal(typeof processes.getValueAt, "undefined", "no getValueAt unless asked for");
        assert.equal(processes[4].Name, "System");
    });
    withHost(seed.seedDump(), { processIndex: "getValueAt" }, () => {
        assert.equal(host.currentSession.Processes.getValueAt(4).Name, "System");
    });
    assert.throws(() => withHost(seed.seedDump(), { processIndex: "Bracket" }, () => {}), /processIndex must be/);
});

test("the process list throws and System cannot be looked up: cannot tell, System not found", () => {
    withHost(seed.seedDump(), { processesThrowAt: 0, processIndex: "none" }, (fake) => {
        assert.deepEqual(m.WrFastMutexJs(), []);
        assertCannotTell(output(fake), "the process list stopped after 0 process(es) (Unable to read memory at Address " +
            "0xffffdead00000000); the System process (PID 4), where the driver's threads run, was not found; " +
            "no thread could be read at all");
    });
});

test("the process list breaks after System: its waiters are found, the rest is reported missing", () => {
    withHost(seed.seedDump(), { processesThrowAt: 1, processIndex: "none" }, (fake) => {
        assert.equal(m.WrFastMutexJs().length, 2);
        assert.match(output(fake), /\nIncomplete: the process list stopped after 1 process\(es\) /);
    });
});

test("System's thread list throws part-way: the waiters read before it are kept and the list is named", () => {
    const dump = seed.seedDump();
    dump.processes[0].threadsThrowAt = 1;
    withHost(dump, {}, (fake) => {
        const rows = m.WrFastMutexJs();
        assert.deepEqual(rows.map((r) => r.thread), [seed.OWNER]);
        const out = output(fake);
        assert.ok(out.includes("recursive acquisition, a self-deadlock that nothing can end. 0 other thread(s)"), out);
        assert.match(out, /\nIncomplete: the thread list of System \(PID 4\) stopped after 1 thread\(s\) \(Unable to read memory/);
    });
    // nothing read before the break: cannot tell
    const clean = seed.cleanDump();
    clean.processes[0].threadsThrowAt = 0;
    withHost(clean, {}, (fake) => {
        assert.deepEqual(m.WrFastMutexJs(), []);
        assertCannotTell(output(fake), "the thread list of System (PID 4) stopped after 0 thread(s)");
    });
});

test("a stack iterator that throws part-way keeps the frames read before it", () => {
    const late = seed.seedDump();
    late.processes[0].threads[0].framesThrowAt = 7;
    withHost(late, {}, () => {
        const rows = m.WrFastMutexJs();
        assert.equal(rows[0].waitFunction, "nt!ExAcquireFastMutex+0x122");
        assert.equal(rows[0].caller, "TestDriver+0x113d");
    });
    const early = seed.seedDump();
    early.processes[0].threads[0].framesThrowAt = 3;
    withHost(early, {}, (fake) => {
        const rows = m.WrFastMutexJs();
        assert.equal(rows[0].waitFunction, "");
        assert.equal(rows[0].waitFrameIndex, -1);
        m.WrFastMutexWalk();
        assert.ok(!fake.commands.some((c) => c.startsWith(".frame")), "no .frame without the frame index");
    });
});

test("driver frames with line numbers: the Caller column shows the function, not [file @ line]", () => {
    const dump = seed.seedDump();
    const owner = dump.processes[0].threads[0];
    owner.frames = owner.frames.slice();
    owner.frames[6] = "TestDriver!TestDriver::seed::file_creation_thread + 0x6a";
    owner.sources = [];
    owner.sources[6] = ["C:\\TestDriver\\src\\seed.rs", 108];
    withHost(dump, {}, (fake) => {
        const rows = m.WrFastMutexJs();
        assert.equal(rows[0].waitFunction, "nt!ExAcquireFastMutex+0x122");
        assert.equal(rows[0].caller, "TestDriver!TestDriver::seed::file_creation_thread+0x6a");
        const out = output(fake);
        assert.ok(out.includes(" nt!ExAcquireFastMutex+0x122 TestDriver!TestDriver::seed::file_creation_thread+0x6a\n"), out);
        assert.ok(!out.includes("seed.rs"), out);
    });
});

test("the fake's frames with a source position print as k does, before a [Switch To] link", () => {
    assert.equal(String(makeFrame("TestDriver!f + 0x6a", ["C:\\src\\seed.rs", 108])),
        "TestDriver!f + 0x6a [C:\\src\\seed.rs @ 108]");
    assert.equal(String(makeFrame("TestDriver!f + 0x6a [Switch To]", ["C:\\src\\seed.rs", 108])),
        "TestDriver!f + 0x6a [C:\\src\\seed.rs @ 108] [Switch To]");
    assert.equal(String(makeFrame("nt!KiSwapContext + 0x76 [Switch To]", null)), "nt!KiSwapContext + 0x76 [Switch To]");
});

test("a WrFastMutex waiter whose wait block cannot be read is counted, not silently dropped", () => {
    const dump = seed.seedDump();
    dump.processes[0].threads[1].waitBlockUnreadable = true;
    withHost(dump, {}, (fake) => {
        assert.deepEqual(m.WrFastMutexJs().map((r) => r.thread), [seed.OWNER]);
        assert.match(output(fake), /\nIncomplete: cannot read the wait block of 1 WrFastMutex waiter\(s\)\. /);
    });
});

test("host.currentSession itself throws: cannot tell, and the error is named", () => {
    withHost(seed.seedDump(), { sessionThrows: true }, (fake) => {
        assert.deepEqual(m.WrFastMutexJs(), []);
        assertCannotTell(output(fake), "the process list stopped after 0 process(es) (no current session)");
    });
});

test("!WrFastMutexWalk: one walk (System first, no duplicates), the table, then the seed's commands", () => {
    const dump = seed.seedDump();
    dump.commandOutput = (cmd) => (cmd.indexOf("dt nt!_FAST_MUTEX") === 0
        ? ["   +0x000 Count            : 0n8", "   +0x008 Owner            : 0xffff9709`ac20e040 Void"]
        : ["(output of " + cmd + ")"]);
    for (const processIndex of ["getValueAt", "bracket", "none"]) {
        withHost(dump, { processIndex }, (fake) => {
            const rows = m.WrFastMutexWalk();
            assert.equal(rows.length, 2, processIndex);
            assert.equal(fake.processList.walks, 1, "the process list is walked once");
            assert.deepEqual(fake.commands, seed.walkthroughCommands("!thread"));
            const out = output(fake);
            assert.equal(out.split(SEED_ROW).length, 2, "the table is printed once");
            assert.ok(out.indexOf(SEED_ROW) < out.indexOf("kd> !thread ffff9709ac20e040\n"), "table before the walk");
            assert.ok(out.includes("kd> dt nt!_FAST_MUTEX ffff9709ac3d4f20\n   +0x000 Count            : 0n8\n"));
        });
    }
    withHost(seed.seedDump(), {}, (fake) => {
        m.WrFastMutexWalk(1);
        assert.equal(fake.commands[0], "!mex.t ffff9709ac20e040");
    });
    withHost(seed.cleanDump(), {}, (fake) => {
        m.WrFastMutexWalk();
        assert.deepEqual(fake.commands, []);
        assert.equal(output(fake), NO_WAITER + "Nothing to walk through.\n");
    });
});

test("!WrFastMutexWalk: a command whose output iterator throws is reported, the walk goes on", () => {
    const dump = seed.seedDump();
    dump.commandOutput = (cmd) => ["first line of " + cmd, "second line of " + cmd];
    dump.commandThrowAt = (cmd) => (cmd.startsWith(".frame") ? 1 : undefined);
    withHost(dump, {}, (fake) => {
        m.WrFastMutexWalk();
        assert.deepEqual(fake.commands, seed.walkthroughCommands("!thread"));
        const out = output(fake);
        assert.ok(out.includes("kd> .frame /r 0n5\nfirst line of .frame /r 0n5\n(.frame /r 0n5 failed after 1 line(s): " +
            "Unable to read memory at Address 0xffffdead00000001)\n"), out);
        assert.ok(out.includes("kd> dt nt!_FAST_MUTEX ffff9709ac3d4f20\nfirst line of dt"), out);
    });
});

test("collectThreadRecords reads state, reason and wait object only through the data model", () => {
    withHost(seed.withSystemThreads(seed.seedDump(), [seed.UNREADABLE_THREAD]), {}, (fake) => {
        const collected = m.collectThreadRecords(fake.host.currentSession);
        assert.deepEqual(collected.coverage, {
            processesSeen: 2, processListError: null, systemFound: true, threadsRead: 9, threadsUnreadable: 1,
            threadListsCut: [], waitBlocksUnreadable: 0
        });
        // System (looked up by PID) first, then the others
        assert.deepEqual([...new Set(collected.records.map((r) => r.processName))], ["System", "explorer.exe"]);
        const owner = collected.records.find((r) => r.thread === seed.OWNER);
        assert.equal(owner.state, 5);
        assert.equal(owner.waitReason, 34);
        assert.equal(owner.waitObject, seed.EVENT);
        assert.equal(owner.frames.length, 9);
        // stacks are only walked for WrFastMutex waiters
        const worker = collected.records.find((r) => r.thread === "ffff9709a5a3c040");
        assert.deepEqual(worker.frames, []);
        assert.equal(worker.waitObject, null);
    });
});

test("forEachGuarded: errors of the collection are returned, errors of the visitor are not swallowed", () => {
    const { lazy } = require("../testlib/fake-host.js");
    const seen = [];
    assert.deepEqual(m.forEachGuarded(() => lazy([1, 2, 3], 2), (v) => { seen.push(v); }),
        { count: 2, error: "Unable to read memory at Address 0xffffdead00000002" });
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(m.forEachGuarded(() => { throw new Error("no list"); }, () => true), { count: 0, error: "no list" });
    assert.deepEqual(m.forEachGuarded(() => lazy([1, 2, 3]), (v) => v < 2), { count: 2, error: null });
    assert.throws(() => m.forEachGuarded(() => lazy([1]), () => { throw new Error("visitor bug"); }), /visitor bug/);
});
