/* Taker acquires the FAST_MUTEX and returns without releasing it; Waiter then waits for it for ever. */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

static FAST_MUTEX g_mutex;

static VOID NTAPI Taker(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    ExAcquireFastMutex(&g_mutex);
}

static VOID NTAPI Waiter(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    ExAcquireFastMutex(&g_mutex);
    ExReleaseFastMutex(&g_mutex);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    ExInitializeFastMutex(&g_mutex);
    status = start_thread(Taker, NULL);
    if (NT_SUCCESS(status))
        status = start_thread(Waiter, NULL);
    return status;
}
