"use strict";
// Unit tests of the pure logic of windbg/WrFastMutex.js (no `host` involved).
const test = require("node:test");
const assert = require("node:assert/strict");
const m = require("../WrFastMutex.js");
const seed = require("../testlib/seed-dump.js");

function record(spec, processName, pid) {
    return {
        processName: processName, pid: pid, thread: spec.address, tid: spec.id, state: spec.state,
        waitReason: spec.waitReason, waitObject: spec.waitObject, frames: spec.frames || []
    };
}

function seedRecords(dump) {
    const out = [];
    for (const p of dump.processes) {
        for (const t of p.threads) {
            if (!t.unreadable) {
                out.push(record(t, p.name, p.id));
            }
        }
    }
    return out;
}

// What a walk that read everything reports (see describeCoverage).
function complete(threadsRead) {
    return { processesSeen: 2, processListError: null, systemFound: true, threadsRead: threadsRead || 9,
        threadsUnreadable: 0, threadListsCut: [], waitBlocksUnreadable: 0 };
}

function reader(dump, reads) {
    return (hex) => {
        if (reads) {
            reads.push(hex);
        }
        const fm = dump.fastMutexes[hex];
        if (!fm) {
            throw new Error("no fast mutex at " + hex);
        }
        return fm;
    };
}

test("constants match _KWAIT_REASON / _KTHREAD_STATE / FAST_MUTEX on x64", () => {
    assert.equal(m.WAIT_REASON_WR_FAST_MUTEX, 34);
    assert.equal(m.KTHREAD_STATE_WAITING, 5);
    assert.equal(m.FAST_MUTEX_EVENT_OFFSET, 0x18);
});

test("normalizeHex accepts the debugger's spellings of a 64-bit address", () => {
    assert.equal(m.normalizeHex("ffff9709`ac3d4f38"), "ffff9709ac3d4f38");
    assert.equal(m.normalizeHex("0xFFFF9709AC3D4F38"), "ffff9709ac3d4f38");
    assert.equal(m.normalizeHex("ac3d4f38"), "00000000ac3d4f38");
    assert.equal(m.normalizeHex(0x18), "0000000000000018");
    assert.throws(() => m.normalizeHex("ffff9709ac3d4f38a"), /not a 64-bit hex value/);
    assert.throws(() => m.normalizeHex("xyz"), /not a 64-bit hex value/);
    assert.throws(() => m.normalizeHex(null), /no value/);
});

test("hex arithmetic keeps all 64 bits (no 53-bit rounding)", () => {
    assert.equal(m.hexSub(seed.EVENT, 0x18), seed.MUTEX);
    assert.equal(m.hexAdd(seed.MUTEX, 0x18), seed.EVENT);
    assert.equal(m.hexSub("ffff970900000010", 0x18), "ffff9708fffffff8");
    assert.equal(m.hexAdd("ffffffffffffffff", 1), "0000000000000000");
    assert.equal(m.hexSub("0000000000000000", 1), "ffffffffffffffff");
    assert.equal(m.formatPointer(seed.MUTEX), "ffff9709`ac3d4f20");
    assert.equal(m.normalizeHex("0xffff9709ac20e040"), m.normalizeHex("ffff9709`ac20e040"));
});

test("Count 0n8 of the seed decodes as held with two waiters", () => {
    assert.deepEqual(m.decodeFastMutexCount(8), { count: 8, held: true, waiterWoken: false, waiters: 2 });
    assert.deepEqual(m.decodeFastMutexCount(1), { count: 1, held: false, waiterWoken: false, waiters: 0 });
    assert.deepEqual(m.decodeFastMutexCount(0), { count: 0, held: true, waiterWoken: false, waiters: 0 });
    assert.deepEqual(m.decodeFastMutexCount(6), { count: 6, held: true, waiterWoken: true, waiters: 1 });
});

test("frames: the wait function is ExAcquireFastMutex at index 5, the caller is the driver", () => {
    const frames = seed.OWNER_FRAMES;
    assert.equal(m.normalizeFrame("nt!KiSwapContext + 0x76 [Switch To]"), "nt!KiSwapContext+0x76");
    assert.equal(m.normalizeFrame("nt!KiSwapContext+0x76 (fffff803`27c6d645)"), "nt!KiSwapContext+0x76");
    assert.equal(m.findWaitFrameIndex(frames), 5);
    assert.equal(m.findCallerFrame(frames, 5), "TestDriver+0x113d");
    assert.equal(m.findWaitFrameIndex(["nt!KiSwapContext+0x76"]), -1);
    const withSymbols = frames.slice(0, 6).concat(["TestDriver!TestDriver::file_creation_thread+0x4d"]);
    assert.equal(m.findCallerFrame(withSymbols, 5), "TestDriver!TestDriver::file_creation_thread+0x4d");
});

test("frames: a source position [file @ line] (PDB with line numbers) is not part of the Caller", () => {
    const seedRs = "TestDriver!TestDriver::seed::file_creation_thread+0x6a";
    // as the k command prints a frame with line information
    assert.equal(m.normalizeFrame("TestDriver!TestDriver::seed::file_creation_thread+0x6a [C:\\TestDriver\\src\\seed.rs @ 108]"),
        seedRs);
    // data-model spacing, a path with spaces, and with the [Switch To] link and an address around it
    assert.equal(m.normalizeFrame("TestDriver!TestDriver::seed::file_creation_thread + 0x6a " +
        "[C:\\Users\\Test User\\TestDriver\\src\\seed.rs @ 108] [Switch To]"), seedRs);
    assert.equal(m.normalizeFrame("TestDriver!TestDriver::seed::file_creation_thread+0x6a (fffff803`2a5c113d) " +
        "[C:\\TestDriver\\src\\seed.rs @ 108]"), seedRs);
    assert.equal(m.normalizeFrame("TestDriver!TestDriver::seed::file_creation_thread+0x6a " +
        "[C:\\TestDriver\\src\\seed.rs @ 108] (fffff803`2a5c113d)"), seedRs);
    // a bracket that is not a source position stays
    assert.equal(m.normalizeFrame("TestDriver!<[u8] as core::fmt::Debug>::fmt+0x10"), "TestDriver!<[u8] as core::fmt::Debug>::fmt+0x10");
    const frames = seed.OWNER_FRAMES.slice(0, 6).concat([
        "TestDriver!TestDriver::seed::file_creation_thread + 0x6a [C:\\TestDriver\\src\\seed.rs @ 108]",
        "nt!PspSystemThreadStartup + 0x57"
    ]);
    assert.equal(m.findWaitFrameIndex(frames), 5);
    assert.equal(m.findCallerFrame(frames, 5), seedRs);
});

test("seed dump: exactly the two TestDriver threads wait on ffff9709ac3d4f20", () => {
    const dump = seed.seedDump();
    const reads = [];
    const rows = m.findFastMutexWaiters(seedRecords(dump), reader(dump, reads));
    assert.equal(rows.length, 2);
    assert.deepEqual(rows.map((r) => [r.thread, r.tid]), [
        ["ffff9709ac20e040", 0xdd8],
        ["ffff9709ab278040", 0xc80]
    ]);
    for (const r of rows) {
        assert.equal(r.processName, "System");
        assert.equal(r.pid, 4);
        assert.equal(r.event, "ffff9709ac3d4f38");
        assert.equal(r.mutex, "ffff9709ac3d4f20");
        assert.equal(r.owner, "ffff9709ac20e040");
        assert.equal(r.count, 8);
        assert.equal(r.contention, 2);
        assert.equal(r.oldIrql, 0);
        assert.equal(r.waitFunction, "nt!ExAcquireFastMutex+0x122");
        assert.equal(r.waitFrameIndex, 5);
    }
    assert.equal(rows[0].ownsMutex, true);
    assert.equal(rows[1].ownsMutex, false);
    assert.equal(rows[0].caller, "TestDriver+0x113d");
    // the mutex is read once, not once per waiter
    assert.deepEqual(reads, ["ffff9709ac3d4f20"]);
});

test("excluded: Ready thread with a stale WaitReason 34, WrGuardedMutex, WrQueue, no wait block", () => {
    const dump = seed.seedDump();
    const rows = m.findFastMutexWaiters(seedRecords(dump), reader(dump));
    const threads = rows.map((r) => r.thread);
    for (const excluded of ["ffff9709a5b12080", "ffff9709a5b99080", "ffff9709a5a3c040", "ffff9709a5bbb080",
        "ffff9709a5b55080", "ffff9709ad0d3080", "ffff9709ad0d4080"]) {
        assert.ok(!threads.includes(excluded), excluded + " must not be reported");
    }
});

test("the event offset is a parameter (symbols may give another layout)", () => {
    const dump = seed.seedDump();
    const seen = [];
    m.findFastMutexWaiters(seedRecords(dump), (hex) => {
        seen.push(hex);
        return dump.fastMutexes[seed.MUTEX];
    }, { eventOffset: 0x20 });
    assert.deepEqual(seen, ["ffff9709ac3d4f18"]);
});

test("report for the seed dump: the !WrFastMutex answer, exact text", () => {
    const dump = seed.seedDump();
    const lines = m.formatReport(m.findFastMutexWaiters(seedRecords(dump), reader(dump)), complete());
    assert.deepEqual(lines, [
        "Process PID Thread            Id State   Reason      Fast Mutex       Owning Thread    Wait Function               Caller",
        "======= === ================ === ======= =========== ================ ================ =========================== ======",
        "System    4 ffff9709ac20e040 dd8 Waiting WrFastMutex ffff9709ac3d4f20 ffff9709ac20e040 nt!ExAcquireFastMutex+0x122 TestDriver+0x113d",
        "System    4 ffff9709ab278040 c80 Waiting WrFastMutex ffff9709ac3d4f20 ffff9709ac20e040 nt!ExAcquireFastMutex+0x122 TestDriver+0x1205",
        "Count: 2",
        "",
        "Fast mutex ffff9709`ac3d4f20 (waited-on event ffff9709`ac3d4f38 = mutex + 0x18)",
        "   Count      : 0n8  (held: lock bit 0 clear, 2 waiter(s) = Count >> 2)",
        "   Owner      : ffff9709`ac20e040",
        "   Contention : 2",
        "   OldIrql    : 0",
        "   Waiters    : ffff9709ac20e040 (Id dd8), ffff9709ab278040 (Id c80)",
        "Verdict: the owner ffff9709`ac20e040 is itself waiting on the fast mutex it owns: recursive acquisition, " +
            "a self-deadlock that nothing can end. 1 other thread(s) wait behind it."
    ]);
});

test("no waiters: empty result and a clear message", () => {
    const dump = seed.cleanDump();
    const rows = m.findFastMutexWaiters(seedRecords(dump), reader(dump));
    assert.deepEqual(rows, []);
    assert.deepEqual(m.formatReport(rows, complete(7)), ["No thread is waiting with reason WrFastMutex (34)."]);
    assert.deepEqual(m.planWalkthrough(rows, false), []);
});

test("walk-through commands follow the seed: owner, .frame /r 0n5, dt nt!_FAST_MUTEX", () => {
    const dump = seed.seedDump();
    const rows = m.findFastMutexWaiters(seedRecords(dump), reader(dump));
    assert.deepEqual(m.planWalkthrough(rows, true), seed.walkthroughCommands("!mex.t"));
    assert.deepEqual(m.planWalkthrough(rows, false), seed.walkthroughCommands("!thread"));
});

test("a mutex whose owner is not waiting: ordinary contention, not a self-deadlock", () => {
    const waiter = "ffff9709b0001080";
    const owner = "ffff9709b0002080";
    const event = "ffff9709b1000058";
    const mutex = "ffff9709b1000040";
    const records = [{
        processName: "System", pid: 4, thread: waiter, tid: 0x120, state: 5, waitReason: 34, waitObject: event,
        frames: seed.OWNER_FRAMES
    }, {
        processName: "System", pid: 4, thread: owner, tid: 0x124, state: 2, waitReason: 0, waitObject: null, frames: []
    }];
    const rows = m.findFastMutexWaiters(records, (hex) => {
        assert.equal(hex, mutex);
        return { count: 4, owner: owner, contention: 1, oldIrql: 0 };
    });
    assert.equal(rows.length, 1);
    assert.equal(rows[0].ownsMutex, false);
    const report = m.formatReport(rows, complete(2));
    assert.equal(report[report.length - 1],
        "Verdict: the owner ffff9709`b0002080 is not waiting on this mutex; run !thread ffff9709b0002080 " +
        "to see what it is doing. 1 thread(s) wait behind it.");
    assert.ok(report.includes("   Count      : 0n4  (held: lock bit 0 clear, 1 waiter(s) = Count >> 2)"));
    assert.deepEqual(m.planWalkthrough(rows, false), [
        "!thread ffff9709b0001080",
        ".thread ffff9709b0001080",
        ".frame /r 0n5",
        "dt nt!_FAST_MUTEX ffff9709b1000040",
        "!thread ffff9709b0002080",
        ".thread"
    ]);
});

test("formatReport needs to know what was read: no coverage is an error, not a 'no waiter'", () => {
    assert.throws(() => m.formatReport([]), /no coverage given/);
    assert.throws(() => m.describeCoverage(undefined), /no coverage given/);
});

test("describeCoverage: complete only when every list was walked to its end and every thread read", () => {
    assert.deepEqual(m.describeCoverage(complete()), { complete: true, problems: [] });
    const cases = [
        [{ processListError: "boom", processesSeen: 3 }, "the process list stopped after 3 process(es) (boom)"],
        [{ systemFound: false }, "the System process (PID 4), where the driver's threads run, was not found"],
        [{ threadListsCut: ["System (PID 4) stopped after 1 thread(s) (x)"] },
            "the thread list of System (PID 4) stopped after 1 thread(s) (x)"],
        [{ threadsUnreadable: 5 }, "cannot read 5 thread(s)"],
        [{ waitBlocksUnreadable: 1 }, "cannot read the wait block of 1 WrFastMutex waiter(s)"],
        [{ threadsRead: 0 }, "no thread could be read at all"]
    ];
    for (const [change, problem] of cases) {
        const c = Object.assign(complete(), change);
        assert.deepEqual(m.describeCoverage(c), { complete: false, problems: [problem] }, problem);
        const report = m.formatReport([], c);
        assert.equal(report.length, 1);
        assert.ok(report[0].startsWith("Cannot tell whether any thread waits on a fast mutex: " + problem + ". "),
            report[0]);
        assert.ok(!report[0].includes("No thread is waiting"));
    }
});

test("waiters found but something unread: the table, then an Incomplete line", () => {
    const dump = seed.seedDump();
    const rows = m.findFastMutexWaiters(seedRecords(dump), reader(dump));
    const lines = m.formatReport(rows, Object.assign(complete(), { threadsUnreadable: 3 }));
    assert.equal(lines[0].slice(0, 7), "Process");
    assert.equal(lines[lines.length - 2], "");
    assert.match(lines[lines.length - 1], /^Incomplete: cannot read 3 thread\(s\)\. Waiters among what could not be read are missing above: check the nt symbols/);
});

test("a reader that throws: the waiters stay, the mutex is marked unreadable, the mutex is tried once", () => {
    const dump = seed.seedDump();
    let calls = 0;
    const rows = m.findFastMutexWaiters(seedRecords(dump), (hex) => {
        calls++;
        throw new Error("Unable to read memory at Address 0x" + hex);
    });
    assert.equal(calls, 1);
    assert.equal(rows.length, 2);
    for (const r of rows) {
        assert.equal(r.owner, null);
        assert.equal(r.count, null);
        assert.equal(r.ownsMutex, false);
        assert.equal(r.mutexReadError, "Unable to read memory at Address 0xffff9709ac3d4f20");
    }
    const lines = m.formatReport(rows, complete());
    assert.ok(lines.includes("   Count      : ? (unreadable)"));
    assert.equal(lines.filter((l) => l.startsWith("Verdict: ")).length, 1);
    assert.match(lines[lines.length - 1], /^Verdict: cannot read the fast mutex ffff9709`ac3d4f20 \(Unable to read memory at Address 0xffff9709ac3d4f20\): 2 thread\(s\) wait on it/);
    // the walk starts at the first waiter, since the owner is unknown
    assert.deepEqual(m.planWalkthrough(rows, false), [
        "!thread ffff9709ac20e040", ".thread ffff9709ac20e040", ".frame /r 0n5",
        "dt nt!_FAST_MUTEX ffff9709ac3d4f20", "!thread ffff9709ab278040", ".thread"
    ]);
    // something that is not an Error
    const odd = m.findFastMutexWaiters(seedRecords(dump), () => { throw "E_FAIL"; });
    assert.equal(odd[0].mutexReadError, "E_FAIL");
});
