/* A worker acquires a FAST_MUTEX that DriverEntry never initialised (zeroed memory). */
#include <ntddk.h>

static FAST_MUTEX g_mutex;  /* ExInitializeFastMutex is never called */

static VOID NTAPI Worker(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    ExAcquireFastMutex(&g_mutex);
    ExReleaseFastMutex(&g_mutex);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    HANDLE thread;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, Worker, NULL);
    if (NT_SUCCESS(status))
        ZwClose(thread);
    return status;
}
