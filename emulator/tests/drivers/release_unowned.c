/* A worker releases a fast mutex it never acquired (at APC_LEVEL, as ExReleaseFastMutex wants),
 * then acquires it. */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

static FAST_MUTEX g_mutex;

static VOID NTAPI Worker(PVOID context)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(context);
    KeRaiseIrql(APC_LEVEL, &old);
    ExReleaseFastMutex(&g_mutex);
    DbgPrint("released without acquiring; IRQL now %d\n", KeGetCurrentIrql());
    ExAcquireFastMutex(&g_mutex);
    DbgPrint("acquired\n");
    ExReleaseFastMutex(&g_mutex);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    ExInitializeFastMutex(&g_mutex);
    return start_thread(Worker, NULL);
}
