"use strict";
// The seed's kernel dump, as far as the seed shows it, encoded for the fake
// data model. Values marked SEED are copied from the seed's WinDbg output
// (!WrFastMutex, !mex.t ffff9709ac20e040, dt nt!_FAST_MUTEX ffff9709ac3d4f20).
// Everything else (the second thread's driver offset, the unrelated threads,
// wait-block addresses) is invented to exercise the filters.

const OWNER = "ffff9709ac20e040";     // SEED: Thread, Id dd8, and the mutex Owner
const SECOND = "ffff9709ab278040";    // SEED: Thread, Id c80
const EVENT = "ffff9709ac3d4f38";     // SEED: WaitBlockList Object (SynchronizationEvent)
const MUTEX = "ffff9709ac3d4f20";     // SEED: dt nt!_FAST_MUTEX ffff9709ac3d4f20 (= EVENT - 0x18)

const KI_WAIT_FRAMES = [              // SEED: frames 0-4 of !mex.t ffff9709ac20e040
    "nt!KiSwapContext + 0x76 [Switch To]",
    "nt!KiSwapThread + 0xab5",
    "nt!KiCommitThreadWait + 0x137",
    "nt!KeWaitForSingleObject + 0x256",
    "nt!ExpAcquireFastMutexContended + 0x7a"
];

const OWNER_FRAMES = KI_WAIT_FRAMES.concat([
    "nt!ExAcquireFastMutex + 0x122",  // SEED: frame 5
    "TestDriver + 0x113d",            // SEED: frame 6 (no symbols for the driver)
    "nt!PspSystemThreadStartup + 0x57",
    "nt!KiStartSystemThread + 0x34"
]);

const SECOND_FRAMES = KI_WAIT_FRAMES.concat([
    "nt!ExAcquireFastMutex + 0x122",  // SEED: its Wait Function column
    "TestDriver + 0x1205",            // invented: the seed does not show this stack
    "nt!PspSystemThreadStartup + 0x57",
    "nt!KiStartSystemThread + 0x34"
]);

function unrelatedSystemThreads() {
    return [
        // a worker thread waiting on its queue: Waiting, WrQueue (15)
        { address: "ffff9709a5a3c040", id: 0x10, state: 5, waitReason: 15, waitObject: "fffff80328a1c2c0",
            frames: ["nt!KiSwapContext + 0x76", "nt!KiSwapThread + 0xab5", "nt!KeRemoveQueueEx + 0x263",
                "nt!ExpWorkerThread + 0x105"] },
        // Ready, with WaitReason still 34 from an earlier wait: must not count
        { address: "ffff9709a5b12080", id: 0x2c, state: 1, waitReason: 34, waitObject: EVENT },
        // Waiting, Executive (0)
        { address: "ffff9709a5b55080", id: 0x30, state: 5, waitReason: 0, waitObject: "ffff9709a5b55180" },
        // Waiting, WrGuardedMutex (35): the neighbour of WrFastMutex, must not count
        { address: "ffff9709a5b99080", id: 0x34, state: 5, waitReason: 35, waitObject: "ffff9709a6001018" },
        // Waiting, WrFastMutex, but no wait block list (torn read): must not count
        { address: "ffff9709a5bbb080", id: 0x38, state: 5, waitReason: 34, waitObject: null }
    ];
}

// A System thread whose KTHREAD page is not in the dump (a partial live dump):
// reading any of its fields throws.
const UNREADABLE_THREAD = { address: "ffff9709a5ccc080", id: 0x3c, state: 5, waitReason: 34, waitObject: EVENT,
    unreadable: true };

// dump with `extra` thread specs appended to the System process.
function withSystemThreads(dump, extra) {
    const system = dump.processes.find((p) => p.id === 4);
    system.threads = system.threads.concat(extra);
    return dump;
}

function explorer() {
    return {
        name: "explorer.exe", id: 0x1a4c, threads: [
            { address: "ffff9709ad0d3080", id: 0x1a50, state: 5, waitReason: 6, waitObject: "ffff9709ad0d4f00" },
            { address: "ffff9709ad0d4080", id: 0x1a54, state: 2, waitReason: 0, waitObject: null }
        ]
    };
}

// The seed's dump: two System threads deadlocked on the driver's FAST_MUTEX.
function seedDump() {
    return {
        processes: [
            { name: "System", id: 4, threads: [
                { address: OWNER, id: 0xdd8, state: 5, waitReason: 34, waitObject: EVENT,
                    waitBlock: "ffff9709ac20e180", frames: OWNER_FRAMES },
                { address: SECOND, id: 0xc80, state: 5, waitReason: 34, waitObject: EVENT,
                    waitBlock: "ffff9709ab278180", frames: SECOND_FRAMES }
            ].concat(unrelatedSystemThreads()) },
            explorer()
        ],
        fastMutexes: {
            // SEED: Count 0n8, Owner 0xffff9709`ac20e040, Contention 2, OldIrql 0
            [MUTEX]: { count: 8, owner: OWNER, contention: 2, oldIrql: 0 }
        }
    };
}

// The same machine before the driver was loaded: nobody waits on a fast mutex.
function cleanDump() {
    return {
        processes: [
            { name: "System", id: 4, threads: unrelatedSystemThreads() },
            explorer()
        ],
        fastMutexes: {}
    };
}

// The seed's walk-through on this dump, as the extension should plan and run
// it: the owner with !mex.t (MEX) or !thread (built-in), its ExAcquireFastMutex
// frame, the fast mutex, then the second waiter, then back to the current thread.
function walkthroughCommands(threadCommand) {
    return [
        threadCommand + " ffff9709ac20e040",
        ".thread ffff9709ac20e040",
        ".frame /r 0n5",
        "dt nt!_FAST_MUTEX ffff9709ac3d4f20",
        threadCommand + " ffff9709ab278040",
        ".thread"
    ];
}

module.exports = {
    OWNER, SECOND, EVENT, MUTEX, OWNER_FRAMES, SECOND_FRAMES, UNREADABLE_THREAD, seedDump, cleanDump,
    withSystemThreads, walkthroughCommands
};
