/* A worker takes a fast mutex twice (it waits for itself, as the seed's FileCreationThread does);
 * then DriverUnload writes through a NULL pointer. */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

static FAST_MUTEX g_mutex;
static volatile LONG *g_nowhere;

static VOID NTAPI Worker(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    ExAcquireFastMutex(&g_mutex);
    ExAcquireFastMutex(&g_mutex);
    ExReleaseFastMutex(&g_mutex);
    ExReleaseFastMutex(&g_mutex);
}

static VOID NTAPI Unload(PDRIVER_OBJECT driver)
{
    UNREFERENCED_PARAMETER(driver);
    g_nowhere[4] = 1;
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(path);
    ExInitializeFastMutex(&g_mutex);
    status = start_thread(Worker, NULL);
    if (!NT_SUCCESS(status))
        return status;
    driver->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
