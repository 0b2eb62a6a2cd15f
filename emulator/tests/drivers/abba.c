/* Two threads take two locks in opposite orders (A then B, B then A), with nothing between the
 * acquires. -DUSE=1: fast mutexes; -DUSE=2: spin locks. The threads do not wait for each other,
 * so whether it deadlocks depends on the schedule. */
#include <ntddk.h>

#if USE == 1
static FAST_MUTEX g_a, g_b;
#define INIT(l) ExInitializeFastMutex(l)
#define LOCK(l) ExAcquireFastMutex(l)
#define UNLOCK(l) ExReleaseFastMutex(l)
#else
static KSPIN_LOCK g_a, g_b;
static KIRQL g_irql_a, g_irql_b;
#define INIT(l) KeInitializeSpinLock(l)
#define LOCK(l) KeAcquireSpinLock(l, (l) == &g_a ? &g_irql_a : &g_irql_b)
#define UNLOCK(l) KeReleaseSpinLock(l, (l) == &g_a ? g_irql_a : g_irql_b)
#endif

static VOID NTAPI AThenB(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    LOCK(&g_a);
    LOCK(&g_b);
    DbgPrint("AThenB holds both\n");
    UNLOCK(&g_b);
    UNLOCK(&g_a);
}

static VOID NTAPI BThenA(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    LOCK(&g_b);
    LOCK(&g_a);
    DbgPrint("BThenA holds both\n");
    UNLOCK(&g_a);
    UNLOCK(&g_b);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    HANDLE thread;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    INIT(&g_a);
    INIT(&g_b);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, AThenB, NULL);
    if (!NT_SUCCESS(status))
        return status;
    ZwClose(thread);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, BThenA, NULL);
    if (NT_SUCCESS(status))
        ZwClose(thread);
    return status;
}
