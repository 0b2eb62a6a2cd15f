/* A worker acquires a FAST_MUTEX that DriverEntry never initialised (zeroed memory). */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

static FAST_MUTEX g_mutex;  /* ExInitializeFastMutex is never called */

static VOID NTAPI Worker(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    ExAcquireFastMutex(&g_mutex);
    ExReleaseFastMutex(&g_mutex);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    return start_thread(Worker, NULL);
}
