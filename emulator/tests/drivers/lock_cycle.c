/* Three threads, three FAST_MUTEXes, each thread takes two in turn: A then B, B then C, C then A.
 * No two threads take the same pair in opposite orders, yet the three orders make a cycle: a
 * potential deadlock, and an actual one only if each thread is preempted holding its first lock
 * (two preemptions: the third thread runs to its first lock without one). */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

static FAST_MUTEX g_a, g_b, g_c;

static void both(PFAST_MUTEX first, PFAST_MUTEX second)
{
    ExAcquireFastMutex(first);
    ExAcquireFastMutex(second);
    ExReleaseFastMutex(second);
    ExReleaseFastMutex(first);
}

static VOID NTAPI AThenB(PVOID context) { UNREFERENCED_PARAMETER(context); both(&g_a, &g_b); }
static VOID NTAPI BThenC(PVOID context) { UNREFERENCED_PARAMETER(context); both(&g_b, &g_c); }
static VOID NTAPI CThenA(PVOID context) { UNREFERENCED_PARAMETER(context); both(&g_c, &g_a); }

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    ExInitializeFastMutex(&g_a);
    ExInitializeFastMutex(&g_b);
    ExInitializeFastMutex(&g_c);
    status = start_thread(AThenB, NULL);
    if (NT_SUCCESS(status))
        status = start_thread(BThenC, NULL);
    if (NT_SUCCESS(status))
        status = start_thread(CThenA, NULL);
    return status;
}
