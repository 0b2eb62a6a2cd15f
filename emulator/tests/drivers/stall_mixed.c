/* Two workers wait when DriverUnload is called: Stopper on a stop event DriverUnload sets, Recurser
 * for the FAST_MUTEX it already owns (a self-deadlock).
 * USE=1: DriverUnload sets the event and waits for Stopper only: Recurser alone is deadlocked.
 * USE=2: Stopper, woken, then waits for the FAST_MUTEX; DriverUnload only sets the event: both are
 *        deadlocked, Stopper on another object than when DriverUnload was called. */
#include <ntddk.h>

#ifndef USE
#define USE 1
#endif
#include "wdk_data.h"
#include "threads.h"

static KEVENT g_stop;
static FAST_MUTEX g_mutex;
static PVOID g_stopper;

static VOID NTAPI Stopper(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    KeWaitForSingleObject(&g_stop, Executive, KernelMode, FALSE, NULL);
    if (USE == 2) {
        ExAcquireFastMutex(&g_mutex);
        ExReleaseFastMutex(&g_mutex);
    }
}

static VOID NTAPI Recurser(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    ExAcquireFastMutex(&g_mutex);
    ExAcquireFastMutex(&g_mutex);
}

static VOID NTAPI Unload(PDRIVER_OBJECT driver)
{
    UNREFERENCED_PARAMETER(driver);
    KeSetEvent(&g_stop, 0, FALSE);
    if (USE == 1)
        KeWaitForSingleObject(g_stopper, Executive, KernelMode, FALSE, NULL);
    ObDereferenceObject(g_stopper);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(path);
    KeInitializeEvent(&g_stop, NotificationEvent, FALSE);
    ExInitializeFastMutex(&g_mutex);
    status = start_thread(Stopper, &g_stopper);
    if (NT_SUCCESS(status))
        status = start_thread(Recurser, NULL);
    if (!NT_SUCCESS(status))
        return status;
    driver->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
