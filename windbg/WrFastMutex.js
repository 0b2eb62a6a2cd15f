"use strict";

// WrFastMutex.js - a WinDbg JavaScript extension that answers, with nothing but WinDbg, the
// question MEX's !WrFastMutex answers in the TestDriver walk-through: which threads wait with
// reason WrFastMutex, on which FAST_MUTEX, who owns it, and what its Count / Contention /
// OldIrql say.
//
//   .scriptload C:\path\to\repo\windbg\WrFastMutex.js
//   !WrFastMutexJs                        table of waiters + one summary per mutex
//   dx @$scriptContents.WrFastMutexJs()   the same rows as data-model objects
//   !WrFastMutexWalk [1]                  the same table, then the seed's walk-through
//                                         (!thread or, with 1, MEX's !mex.t, .thread,
//                                         .frame /r, dt nt!_FAST_MUTEX), from one walk
//
// A thread blocked in ExAcquireFastMutex waits on the KEVENT inside the FAST_MUTEX: for a
// thread in State Waiting (5) with WaitReason WrFastMutex (34, Windows 10 1607 .. 11),
// WaitBlockList->Object is FAST_MUTEX.Event, and the mutex starts Event's offset (0x18 on
// x64) before it.
//
// A dump is rarely complete (partial live dumps leave pages out; without nt symbols no
// _ETHREAD can be read), and the data model says so by throwing late: on a field read, or on
// a lazy collection's next(). So every read and iteration in the adapter is guarded, what
// could not be read is counted, and then the report says "Cannot tell ..." rather than "No
// thread is waiting": an unreadable dump is not a "no deadlock".
//
// The pure logic (64-bit addresses as 16-digit hex strings: numbers hold 53 bits; Count
// decoding; the report; the walk-through's commands) never touches `host`; the WinDbg
// adapter below it is the only code that reads the data model. Both are tested with node
// (windbg/test/), through the exports at the end, which WinDbg (no `module`) skips. The file
// keeps to ECMAScript 2015, the level WinDbg's provider documents (windbg/test/es-compat.test.js).

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

var KTHREAD_STATE_WAITING = 5;           // _KTHREAD_STATE::Waiting
var WAIT_REASON_WR_FAST_MUTEX = 34;      // _KWAIT_REASON::WrFastMutex (0x22)
var FAST_MUTEX_EVENT_OFFSET = 0x18;      // FIELD_OFFSET(FAST_MUTEX, Event) on x64
var FM_LOCK_BIT = 0x1;                   // Count bit 0: 1 = free, 0 = held
var FM_LOCK_WAITER_WOKEN = 0x2;          // Count bit 1: a waiter has been woken
var FM_LOCK_WAITER_INC = 0x4;            // each waiter adds 4 to Count
var MAX_FRAMES = 24;
var SYSTEM_PID = 4;                      // the System process: PsCreateSystemThread's threads run in it
// Byte offsets of the nt!_FAST_MUTEX fields on x64, as dt nt!_FAST_MUTEX prints them in
// the seed (+0x000 Count, +0x008 Owner, +0x010 Contention, +0x018 Event, +0x030 OldIrql);
// used only when the symbols lack the type.
var FAST_MUTEX_RAW = { count: 0x0, owner: 0x8, contention: 0x10, oldIrql: 0x30 };

// ---------------------------------------------------------------------------
// Pure logic: 64-bit addresses as hex strings
// ---------------------------------------------------------------------------

function padLeft(text, width, ch) {
    var s = String(text);
    return s.length >= width ? s : (ch === undefined ? " " : ch).repeat(width - s.length) + s;
}

function padRight(text, width) {
    var s = String(text);
    return s.length >= width ? s : s + " ".repeat(width - s.length);
}

// Any spelling of a 64-bit address -> 16 lowercase hex digits.
// Accepts "ffff9709`ac3d4f38", "0xFFFF9709AC3D4F38", "ac3d4f38", small numbers.
function normalizeHex(value) {
    if (value === null || value === undefined) {
        throw new Error("normalizeHex: no value");
    }
    var s;
    if (typeof value === "number") {
        if (value < 0 || value > 9007199254740991 || Math.floor(value) !== value) {
            throw new Error("normalizeHex: " + value + " is not an address");
        }
        s = value.toString(16);
    } else {
        s = String(value).trim().toLowerCase();
    }
    s = s.replace(/`/g, "");
    if (s.indexOf("0x") === 0) {
        s = s.substring(2);
    }
    if (!/^[0-9a-f]{1,16}$/.test(s)) {
        throw new Error("normalizeHex: '" + value + "' is not a 64-bit hex value");
    }
    return padLeft(s, 16, "0");
}

// address + delta, modulo 2^64; delta is a JavaScript integer with |delta| < 2^32.
function hexAdd(value, delta) {
    var hex = normalizeHex(value);
    var hi = parseInt(hex.substring(0, 8), 16);
    var lo = parseInt(hex.substring(8), 16);
    lo += delta;
    while (lo < 0) {
        lo += 0x100000000;
        hi -= 1;
    }
    while (lo >= 0x100000000) {
        lo -= 0x100000000;
        hi += 1;
    }
    hi = ((hi % 0x100000000) + 0x100000000) % 0x100000000;
    return padLeft(hi.toString(16), 8, "0") + padLeft(lo.toString(16), 8, "0");
}

function hexSub(value, delta) {
    return hexAdd(value, -delta);
}

function isNullHex(value) {
    return normalizeHex(value) === "0000000000000000";
}

// "ffff9709`ac3d4f20": how the debugger prints 64-bit pointers.
function formatPointer(value) {
    var hex = normalizeHex(value);
    return hex.substring(0, 8) + "`" + hex.substring(8);
}

// "ffff9709ac3d4f20": how MEX tables print them (and what !thread accepts).
function formatPlain(value) {
    return normalizeHex(value);
}

// ---------------------------------------------------------------------------
// Pure logic: FAST_MUTEX fields and stacks
// ---------------------------------------------------------------------------

// Count of a FAST_MUTEX (LONG) -> what it says. Bit 0 is the lock bit (1 = free),
// bit 1 says a waiter has been woken, and every waiter adds FM_LOCK_WAITER_INC.
// Seed: Count 0n8 = held, nobody woken, 2 waiters.
function decodeFastMutexCount(count) {
    var c = Number(count) >>> 0;
    return {
        count: Number(count),
        held: (c & FM_LOCK_BIT) === 0,
        waiterWoken: (c & FM_LOCK_WAITER_WOKEN) !== 0,
        waiters: Math.floor(c / FM_LOCK_WAITER_INC)
    };
}

// What a frame's display string may carry after "module!symbol + 0xoff", in any order:
// dx's "[Switch To]" link, an address "(fffff803`27c6d645)", and, when the PDB has line
// numbers, the source position "[C:\TestDriver\src\seed.rs @ 108]" in the form the k
// command prints it ("module!symbol+0xoff [file @ line]").
var FRAME_TRAILERS = [
    /\s*\[Switch To\]\s*$/,
    /\s*\([0-9a-fA-F`x]+\)\s*$/,
    /\s*\[[^\]]*\s@\s*\d+\]\s*$/
];

// A data-model frame display string -> "module!symbol+0xoff".
// Tolerates "nt!KiSwapContext + 0x76 [Switch To]", "nt!KiSwapContext+0x76 (fffff803`27c6d645)",
// "TestDriver!TestDriver::seed::file_creation_thread + 0x6a [C:\TestDriver\src\seed.rs @ 108]".
function normalizeFrame(text) {
    var s = String(text);
    var stripped = true;
    while (stripped) {
        stripped = false;
        for (var i = 0; i < FRAME_TRAILERS.length; i++) {
            var shorter = s.replace(FRAME_TRAILERS[i], "");
            if (shorter !== s) {
                s = shorter;
                stripped = true;
            }
        }
    }
    s = s.replace(/\s*\+\s*/g, "+");
    return s.trim();
}

// Frames of the blocking machinery below the function that asked to wait.
var WAIT_MACHINERY = /^nt!(Ki|Ke|Exp)/;

// Index of the frame that asked for the wait (ExAcquireFastMutex in the seed: frame 5),
// or -1 if every frame is wait machinery.
function findWaitFrameIndex(frames) {
    for (var i = 0; i < frames.length; i++) {
        if (!WAIT_MACHINERY.test(normalizeFrame(frames[i]))) {
            return i;
        }
    }
    return -1;
}

// First frame above the wait function that is not in nt: the driver code that
// called ExAcquireFastMutex ("TestDriver+0x113d" without symbols).
function findCallerFrame(frames, waitIndex) {
    for (var i = waitIndex + 1; i < frames.length; i++) {
        var f = normalizeFrame(frames[i]);
        if (f.indexOf("nt!") !== 0) {
            return f;
        }
    }
    return "";
}

// ---------------------------------------------------------------------------
// Pure logic: from thread records to rows
// ---------------------------------------------------------------------------

// The text of anything thrown (the data model throws Error objects; be ready for others).
function errorText(e) {
    if (e === null || e === undefined) {
        return "unknown error";
    }
    if (typeof e.message === "string" && e.message.length > 0) {
        return e.message;
    }
    return String(e);
}

// threads: array of records
//   { processName, pid, thread, tid, state, waitReason, waitObject, frames }
//   (thread and waitObject: any hex spelling; waitObject null if unknown)
// readFastMutex(mutexHex16) -> { count, owner, contention, oldIrql }; it may throw
//   (the mutex's page is not in the dump): the waiters are still reported, with
//   mutexReadError set and owner/count/contention/oldIrql null.
// options: { eventOffset }  (default 0x18)
// Returns rows in the order the records came, one per waiting thread.
function findFastMutexWaiters(threads, readFastMutex, options) {
    var eventOffset = (options && options.eventOffset !== undefined) ? options.eventOffset : FAST_MUTEX_EVENT_OFFSET;
    var cache = {};
    var rows = [];
    for (var i = 0; i < threads.length; i++) {
        var t = threads[i];
        if (Number(t.state) !== KTHREAD_STATE_WAITING || Number(t.waitReason) !== WAIT_REASON_WR_FAST_MUTEX) {
            continue;
        }
        if (t.waitObject === null || t.waitObject === undefined || isNullHex(t.waitObject)) {
            continue;
        }
        var event = normalizeHex(t.waitObject);
        var mutex = hexSub(event, eventOffset);
        if (!cache.hasOwnProperty(mutex)) {
            try {
                var m = readFastMutex(mutex);
                cache[mutex] = {
                    count: Number(m.count),
                    owner: normalizeHex(m.owner),
                    contention: Number(m.contention),
                    oldIrql: Number(m.oldIrql),
                    readError: null
                };
            } catch (e) {
                cache[mutex] = { count: null, owner: null, contention: null, oldIrql: null, readError: errorText(e) };
            }
        }
        var fm = cache[mutex];
        var frames = (t.frames || []).map(normalizeFrame);
        var waitIndex = findWaitFrameIndex(frames);
        var threadHex = normalizeHex(t.thread);
        rows.push({
            processName: String(t.processName),
            pid: Number(t.pid),
            thread: threadHex,
            tid: Number(t.tid),
            state: "Waiting",
            waitReason: "WrFastMutex",
            event: event,
            mutex: mutex,
            owner: fm.owner,
            count: fm.count,
            contention: fm.contention,
            oldIrql: fm.oldIrql,
            mutexReadError: fm.readError,
            ownsMutex: fm.owner !== null && fm.owner === threadHex,
            waitFrameIndex: waitIndex,
            waitFunction: waitIndex >= 0 ? frames[waitIndex] : "",
            caller: waitIndex >= 0 ? findCallerFrame(frames, waitIndex) : ""
        });
    }
    return rows;
}

// Rows -> one entry per distinct fast mutex, in order of first appearance.
function summarizeMutexes(rows) {
    var order = [];
    var byMutex = {};
    for (var i = 0; i < rows.length; i++) {
        var r = rows[i];
        if (!byMutex.hasOwnProperty(r.mutex)) {
            byMutex[r.mutex] = {
                mutex: r.mutex,
                event: r.event,
                owner: r.owner,
                count: r.count,
                decoded: r.mutexReadError === null ? decodeFastMutexCount(r.count) : null,
                contention: r.contention,
                oldIrql: r.oldIrql,
                readError: r.mutexReadError,
                waiters: [],
                ownerIsWaiting: false
            };
            order.push(r.mutex);
        }
        var s = byMutex[r.mutex];
        s.waiters.push({ thread: r.thread, tid: r.tid });
        if (r.ownsMutex) {
            s.ownerIsWaiting = true;
        }
    }
    return order.map(function (k) { return byMutex[k]; });
}

var FULL_DUMP_ADVICE = "take a Full live kernel memory dump (Task Manager: \"Full live kernel memory dump\"), " +
    "not a partial or kernel-stacks-only one";
var SYMBOL_ADVICE = "check the nt symbols (.symfix+ C:\\Symbols, .reload /f nt, then lm m nt must say \"pdb symbols\")";

function verdictFor(summary) {
    var others = summary.waiters.length - (summary.ownerIsWaiting ? 1 : 0);
    if (summary.readError !== null) {
        return "cannot read the fast mutex " + formatPointer(summary.mutex) + " (" + summary.readError + "): " +
            summary.waiters.length + " thread(s) wait on it, but its owner, Count and Contention are unknown. " +
            "Its page is missing from the dump: " + FULL_DUMP_ADVICE + ".";
    }
    if (isNullHex(summary.owner)) {
        return "no owner recorded: the mutex may be in the middle of a hand-over; look again at Count and the waiters' stacks.";
    }
    if (summary.ownerIsWaiting) {
        return "the owner " + formatPointer(summary.owner) + " is itself waiting on the fast mutex it owns: " +
            "recursive acquisition, a self-deadlock that nothing can end. " +
            others + " other thread(s) wait behind it.";
    }
    return "the owner " + formatPointer(summary.owner) + " is not waiting on this mutex; run !thread " +
        formatPlain(summary.owner) + " to see what it is doing. " + others + " thread(s) wait behind it.";
}

// What the walk over the data model could and could not read.
// coverage: { processesSeen, processListError (string or null), systemFound,
//             threadsRead, threadsUnreadable, threadListsCut: [text], waitBlocksUnreadable }
// -> { complete, problems: [text] }. Anything left unread makes an empty result
// meaningless, so it is never reported as "nobody waits".
function describeCoverage(coverage) {
    if (!coverage) {
        throw new Error("describeCoverage: no coverage given");
    }
    var problems = [];
    if (coverage.processListError !== null && coverage.processListError !== undefined) {
        problems.push("the process list stopped after " + coverage.processesSeen + " process(es) (" +
            coverage.processListError + ")");
    }
    if (!coverage.systemFound) {
        problems.push("the System process (PID 4), where the driver's threads run, was not found");
    }
    for (var i = 0; i < coverage.threadListsCut.length; i++) {
        problems.push("the thread list of " + coverage.threadListsCut[i]);
    }
    if (coverage.threadsUnreadable > 0) {
        problems.push("cannot read " + coverage.threadsUnreadable + " thread(s)");
    }
    if (coverage.waitBlocksUnreadable > 0) {
        problems.push("cannot read the wait block of " + coverage.waitBlocksUnreadable + " WrFastMutex waiter(s)");
    }
    if (coverage.threadsRead === 0) {
        problems.push("no thread could be read at all");
    }
    return { complete: problems.length === 0, problems: problems };
}

var TABLE_COLUMNS = [
    { title: "Process", width: 7, right: false },
    { title: "PID", width: 3, right: true },
    { title: "Thread", width: 16, right: false },
    { title: "Id", width: 3, right: true },
    { title: "State", width: 7, right: false },
    { title: "Reason", width: 11, right: false },
    { title: "Fast Mutex", width: 16, right: false },
    { title: "Owning Thread", width: 16, right: false },
    { title: "Wait Function", width: 27, right: false },
    { title: "Caller", width: 6, right: false }
];

function formatTableLine(cells) {
    var parts = [];
    for (var i = 0; i < TABLE_COLUMNS.length; i++) {
        var c = TABLE_COLUMNS[i];
        var text = String(cells[i]);
        var width = Math.max(c.width, c.title.length);
        parts.push(c.right ? padLeft(text, width) : padRight(text, width));
    }
    return parts.join(" ").replace(/\s+$/, "");
}

// rows: from findFastMutexWaiters; coverage: what the walk could read (see
// describeCoverage). Lines of the report. Three endings, and only the first
// says that nobody waits:
//   "No thread is waiting with reason WrFastMutex (34)."    everything was read, no waiter
//   "Cannot tell whether any thread waits ...: <why>. ..."  no waiter found, but not everything was read
//   "Incomplete: <why> ..."                                 waiters found, others may be missing
// scripts/Invoke-DumpAnalysis.ps1 picks these lines, and the Verdict lines, out of the log.
function formatReport(rows, coverage) {
    var covered = describeCoverage(coverage);
    var lines = [];
    var advice = SYMBOL_ADVICE + ", or " + FULL_DUMP_ADVICE + ".";
    if (rows.length === 0) {
        if (covered.complete) {
            lines.push("No thread is waiting with reason WrFastMutex (" + WAIT_REASON_WR_FAST_MUTEX + ").");
        } else {
            lines.push("Cannot tell whether any thread waits on a fast mutex: " + covered.problems.join("; ") +
                ". This is not a \"no deadlock\" answer: " + advice);
        }
        return lines;
    }
    lines.push(formatTableLine(TABLE_COLUMNS.map(function (c) { return c.title; })));
    lines.push(formatTableLine(TABLE_COLUMNS.map(function (c) {
        return "=".repeat(Math.max(c.width, c.title.length));
    })));
    for (var i = 0; i < rows.length; i++) {
        var r = rows[i];
        lines.push(formatTableLine([r.processName, r.pid.toString(16), formatPlain(r.thread), r.tid.toString(16),
            r.state, r.waitReason, formatPlain(r.mutex), r.owner === null ? "?" : formatPlain(r.owner),
            r.waitFunction, r.caller]));
    }
    lines.push("Count: " + rows.length);
    var summaries = summarizeMutexes(rows);
    for (var j = 0; j < summaries.length; j++) {
        var s = summaries[j];
        var d = s.decoded;
        lines.push("");
        lines.push("Fast mutex " + formatPointer(s.mutex) + " (waited-on event " + formatPointer(s.event) +
            " = mutex + 0x" + hexDistance(s.mutex, s.event) + ")");
        if (d === null) {
            lines.push("   Count      : ? (unreadable)");
            lines.push("   Owner      : ? (unreadable)");
        } else {
            lines.push("   Count      : 0n" + s.count + "  (" + (d.held ? "held: lock bit 0 clear" : "free: lock bit 0 set") +
                ", " + d.waiters + " waiter(s) = Count >> 2" + (d.waiterWoken ? ", a waiter was woken" : "") + ")");
            lines.push("   Owner      : " + formatPointer(s.owner));
            lines.push("   Contention : " + s.contention);
            lines.push("   OldIrql    : " + s.oldIrql);
        }
        lines.push("   Waiters    : " + s.waiters.map(function (w) {
            return formatPlain(w.thread) + " (Id " + w.tid.toString(16) + ")";
        }).join(", "));
        lines.push("Verdict: " + verdictFor(s));
    }
    if (!covered.complete) {
        lines.push("");
        lines.push("Incomplete: " + covered.problems.join("; ") +
            ". Waiters among what could not be read are missing above: " + advice);
    }
    return lines;
}

function hexDistance(low, high) {
    var a = normalizeHex(low);
    var b = normalizeHex(high);
    if (a.substring(0, 8) !== b.substring(0, 8)) {
        return "?";
    }
    return (parseInt(b.substring(8), 16) - parseInt(a.substring(8), 16)).toString(16);
}

// The seed's walk-through as debugger commands, for every fast mutex found:
// the owner first (the seed's !mex.t <owner>, .frame /r 0n5, dt nt!_FAST_MUTEX),
// then any other waiter. useMex: !mex.t instead of !thread.
function planWalkthrough(rows, useMex) {
    var commands = [];
    var summaries = summarizeMutexes(rows);
    for (var i = 0; i < summaries.length; i++) {
        var s = summaries[i];
        var ownerRow = null;
        for (var k = 0; k < rows.length; k++) {
            if (rows[k].mutex === s.mutex && rows[k].ownsMutex) {
                ownerRow = rows[k];
            }
        }
        var first = ownerRow ? ownerRow : rows.filter(function (r) { return r.mutex === s.mutex; })[0];
        var threadCmd = useMex ? "!mex.t " : "!thread ";
        commands.push(threadCmd + formatPlain(first.thread));
        // Plain ".thread <thread>": its /p and /r switches are for live debugging only
        // (Microsoft's .thread page), and the walk usually runs on a dump.
        commands.push(".thread " + formatPlain(first.thread));
        if (first.waitFrameIndex >= 0) {
            commands.push(".frame /r 0n" + first.waitFrameIndex);
        }
        commands.push("dt nt!_FAST_MUTEX " + formatPlain(s.mutex));
        for (var w = 0; w < s.waiters.length; w++) {
            if (s.waiters[w].thread !== first.thread) {
                commands.push(threadCmd + formatPlain(s.waiters[w].thread));
            }
        }
        if (!ownerRow && s.owner !== null && !isNullHex(s.owner)) {
            commands.push(threadCmd + formatPlain(s.owner));
        }
    }
    if (commands.length > 0) {
        commands.push(".thread");
    }
    return commands;
}

// ---------------------------------------------------------------------------
// WinDbg adapter: the only code that touches `host`
// ---------------------------------------------------------------------------
//
// The data model as Microsoft documents it ("Native Debugger Objects in
// JavaScript Extensions - Debugger Object Details"): 64-bit values are library
// Int64 objects; a pointer has .address (its value), .isNull and .dereference();
// anything the data model can iterate has [Symbol.iterator]; an object indexable
// by ordinals in one dimension is indexed with object[index], others get
// getValueAt(...); host.memory.readMemoryValues(location, count, size, isSigned)
// reads raw values and "may throw an exception if the memory could not be read".

// A 64-bit value from the data model (host.Int64, a JavaScript number, a
// pointer object, or a location object) -> 16 hex digits.
function hostValueToHex(value) {
    if (value === null || value === undefined) {
        throw new Error("no value");
    }
    if (typeof value === "number" || typeof value === "string") {
        return normalizeHex(value);
    }
    if (value.address !== undefined && value.address !== value) {
        return hostValueToHex(value.address);
    }
    if (typeof value.toString === "function") {
        return normalizeHex(value.toString(16));
    }
    throw new Error("cannot read an address from " + value);
}

function typedObjectAddress(obj) {
    if (obj.address !== undefined) {
        return hostValueToHex(obj.address);
    }
    return hostValueToHex(obj.targetLocation);
}

// Calls visit(item) for each item of a data-model collection and never lets the
// collection's own errors escape: reading the collection, asking for its
// iterator and each next() are guarded (the real iterators are lazy and read
// target memory on every step). visit returning false stops early (the
// iterator's return() is called, as for-of's break would). Errors thrown by
// visit itself are not caught here.
// -> { count: items visited, error: text or null }
function forEachGuarded(getCollection, visit) {
    var iterator;
    try {
        var collection = getCollection();
        iterator = collection[Symbol.iterator]();
    } catch (e) {
        return { count: 0, error: errorText(e) };
    }
    var count = 0;
    for (;;) {
        var step;
        try {
            step = iterator.next();
        } catch (e) {
            return { count: count, error: errorText(e) };
        }
        if (step.done) {
            return { count: count, error: null };
        }
        count++;
        if (visit(step.value) === false) {
            try {
                if (typeof iterator.return === "function") {
                    iterator.return();
                }
            } catch (e) {
                // nothing to clean up on our side
            }
            return { count: count, error: null };
        }
    }
}

function eventOffsetFromSymbols() {
    try {
        var t = host.getModuleType("nt", "_FAST_MUTEX");
        // null (or undefined) when the symbols lack the type, as Microsoft's ImageInfo.js sample checks
        if (t !== null && t !== undefined && t.fields && t.fields.Event) {
            var off = t.fields.Event.offset;
            if (off !== undefined && off !== null) {
                return Number(off);
            }
        }
    } catch (e) {
        // no type information: fall back to the x64 layout
    }
    return FAST_MUTEX_EVENT_OFFSET;
}

// The System process (PID 4) looked up by its index, when the collection allows it.
function lookupProcess(processes, pid) {
    var p;
    try {
        if (typeof processes.getValueAt === "function") {
            p = processes.getValueAt(pid);
        } else {
            p = processes[pid];
        }
        if (p === null || p === undefined || Number(p.Id) !== pid) {
            return null;
        }
        return p;
    } catch (e) {
        return null;
    }
}

function newCoverage() {
    return {
        processesSeen: 0,
        processListError: null,
        systemFound: false,
        threadsRead: 0,
        threadsUnreadable: 0,
        threadListsCut: [],
        waitBlocksUnreadable: 0
    };
}

// One thread -> a plain record for the pure logic. Throws when the thread's
// kernel object cannot be read (no nt symbols, page not in the dump).
function readThreadRecord(thread, processName, pid, coverage) {
    var ko = thread.KernelObject;
    var tcb = ko.Tcb;
    var state = Number(tcb.State);
    var reason = Number(tcb.WaitReason);
    var record = {
        processName: processName,
        pid: pid,
        thread: typedObjectAddress(ko),
        tid: Number(thread.Id),
        state: state,
        waitReason: reason,
        waitObject: null,
        frames: []
    };
    if (state === KTHREAD_STATE_WAITING && reason === WAIT_REASON_WR_FAST_MUTEX) {
        try {
            var wbl = tcb.WaitBlockList;
            if (!wbl.isNull) {
                record.waitObject = hostValueToHex(wbl.dereference().Object);
            }
        } catch (e) {
            coverage.waitBlocksUnreadable++;
        }
        // the frames read before a failing step are kept: the wait function is near the top
        forEachGuarded(function () { return thread.Stack.Frames; }, function (frame) {
            if (record.frames.length >= MAX_FRAMES) {
                return false;
            }
            record.frames.push(String(frame.toString()));
            return true;
        });
    }
    return record;
}

function collectProcessThreads(process, records, coverage) {
    var processName = "?";
    var pid = -1;
    try {
        processName = String(process.Name);
    } catch (e) {
        // keep "?"
    }
    try {
        pid = Number(process.Id);
    } catch (e) {
        // keep -1
    }
    if (pid === SYSTEM_PID) {
        coverage.systemFound = true;
    }
    var walked = forEachGuarded(function () { return process.Threads; }, function (thread) {
        try {
            records.push(readThreadRecord(thread, processName, pid, coverage));
            coverage.threadsRead++;
        } catch (e) {
            coverage.threadsUnreadable++;
        }
        return true;
    });
    if (walked.error !== null) {
        coverage.threadListsCut.push(processName + " (PID " + pid + ") stopped after " + walked.count +
            " thread(s) (" + walked.error + ")");
    }
}

// Walk every thread of every process in `session` (host.currentSession in
// WinDbg) once, the System process first (it runs the driver's threads, so a
// process list that breaks later still has them), and return plain records
// for the pure logic plus what could not be read.
function collectThreadRecords(session) {
    var records = [];
    var coverage = newCoverage();
    var system = null;
    try {
        system = lookupProcess(session.Processes, SYSTEM_PID);
    } catch (e) {
        system = null;
    }
    if (system !== null) {
        collectProcessThreads(system, records, coverage);
    }
    var walked = forEachGuarded(function () { return session.Processes; }, function (process) {
        var pid = -1;
        try {
            pid = Number(process.Id);
        } catch (e) {
            pid = -1;
        }
        if (system === null || pid !== SYSTEM_PID) {
            collectProcessThreads(process, records, coverage);
        }
        return true;
    });
    coverage.processesSeen = walked.count;
    coverage.processListError = walked.error;
    return { records: records, coverage: coverage };
}

// The fields of the nt!_FAST_MUTEX at mutexHex. Through the symbols' type when
// it is there; when it is not (getModuleType gives null, createTypedObject
// throws), by raw reads at the x64 offsets dt nt!_FAST_MUTEX shows in the seed.
// Throws when the memory itself cannot be read.
function readFastMutexFromTarget(mutexHex) {
    var typedError;
    try {
        var m = host.createTypedObject(host.parseInt64(normalizeHex(mutexHex), 16), "nt", "_FAST_MUTEX");
        // createTypedObject reads nothing yet: these field reads are what can fail
        return {
            count: Number(m.Count),
            owner: hostValueToHex(m.Owner),
            contention: Number(m.Contention),
            oldIrql: Number(m.OldIrql)
        };
    } catch (e) {
        typedError = errorText(e);
    }
    try {
        return readFastMutexRaw(mutexHex);
    } catch (e) {
        throw new Error(typedError + "; raw read: " + errorText(e));
    }
}

function readFastMutexRaw(mutexHex) {
    function at(offset) {
        return host.parseInt64(hexAdd(mutexHex, offset), 16);
    }
    return {
        count: Number(host.memory.readMemoryValues(at(FAST_MUTEX_RAW.count), 1, 4, true)[0]),
        owner: hostValueToHex(host.memory.readMemoryValues(at(FAST_MUTEX_RAW.owner), 1, 8, false)[0]),
        contention: Number(host.memory.readMemoryValues(at(FAST_MUTEX_RAW.contention), 1, 4, false)[0]),
        oldIrql: Number(host.memory.readMemoryValues(at(FAST_MUTEX_RAW.oldIrql), 1, 4, false)[0])
    };
}

function log(line) {
    host.diagnostics.debugLog(line + "\n");
}

function WaiterRow(row) {
    for (var k in row) {
        if (row.hasOwnProperty(k)) {
            this[k] = row[k];
        }
    }
}

WaiterRow.prototype.toString = function () {
    return formatPlain(this.thread) + " waits on fast mutex " + formatPlain(this.mutex) +
        " owned by " + (this.owner === null ? "?" : formatPlain(this.owner));
};

// One walk over the data model -> rows, coverage and the printed report.
function gatherAndReport() {
    var collected;
    try {
        collected = collectThreadRecords(host.currentSession);
    } catch (e) {
        collected = { records: [], coverage: newCoverage() };
        collected.coverage.processListError = errorText(e);
    }
    var rows = findFastMutexWaiters(collected.records, readFastMutexFromTarget,
        { eventOffset: eventOffsetFromSymbols() });
    var lines = formatReport(rows, collected.coverage);
    for (var i = 0; i < lines.length; i++) {
        log(lines[i]);
    }
    return rows;
}

// !WrFastMutexJs / dx @$scriptContents.WrFastMutexJs()
function WrFastMutexJs() {
    return gatherAndReport().map(function (r) { return new WaiterRow(r); });
}

// !WrFastMutexWalk [useMex] / dx @$scriptContents.WrFastMutexWalk(1)
// The table of !WrFastMutexJs, then the walk-through, from the same single walk.
function WrFastMutexWalk(useMex) {
    var rows = gatherAndReport();
    var commands = planWalkthrough(rows, Boolean(useMex && Number(useMex) !== 0));
    if (commands.length === 0) {
        log("Nothing to walk through.");
        return [];
    }
    var control = host.namespace.Debugger.Utility.Control;
    for (var i = 0; i < commands.length; i++) {
        log("");
        log("kd> " + commands[i]);
        var shown = forEachGuarded(function () { return control.ExecuteCommand(commands[i]); }, function (line) {
            log(String(line));
            return true;
        });
        if (shown.error !== null) {
            log("(" + commands[i] + " failed after " + shown.count + " line(s): " + shown.error + ")");
        }
    }
    return rows.map(function (r) { return new WaiterRow(r); });
}

function initializeScript() {
    // 1.2, as Microsoft's samples (CodeFlow.js, SynTypes.js) claim: nothing here needs a later API.
    return [
        new host.apiVersionSupport(1, 2),
        new host.functionAlias(WrFastMutexJs, "WrFastMutexJs"),
        new host.functionAlias(WrFastMutexWalk, "WrFastMutexWalk")
    ];
}

// node only (WinDbg has no `module`): export for windbg/test/.
if (typeof module !== "undefined" && module.exports) {
    module.exports = {
        KTHREAD_STATE_WAITING: KTHREAD_STATE_WAITING,
        WAIT_REASON_WR_FAST_MUTEX: WAIT_REASON_WR_FAST_MUTEX,
        FAST_MUTEX_EVENT_OFFSET: FAST_MUTEX_EVENT_OFFSET,
        normalizeHex: normalizeHex,
        hexAdd: hexAdd,
        hexSub: hexSub,
        formatPointer: formatPointer,
        formatPlain: formatPlain,
        decodeFastMutexCount: decodeFastMutexCount,
        normalizeFrame: normalizeFrame,
        findWaitFrameIndex: findWaitFrameIndex,
        findCallerFrame: findCallerFrame,
        findFastMutexWaiters: findFastMutexWaiters,
        summarizeMutexes: summarizeMutexes,
        describeCoverage: describeCoverage,
        formatReport: formatReport,
        planWalkthrough: planWalkthrough,
        hostValueToHex: hostValueToHex,
        forEachGuarded: forEachGuarded,
        eventOffsetFromSymbols: eventOffsetFromSymbols,
        collectThreadRecords: collectThreadRecords,
        readFastMutexFromTarget: readFastMutexFromTarget,
        WrFastMutexJs: WrFastMutexJs,
        WrFastMutexWalk: WrFastMutexWalk,
        initializeScript: initializeScript
    };
}
