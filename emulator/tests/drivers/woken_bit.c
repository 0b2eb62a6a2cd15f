/* Holder takes the FAST_MUTEX and sleeps; Waiter finds it taken and waits; Holder releases (Waiter
 * is woken: the waiter-woken bit is set), takes it again at once (before Waiter runs) and releases
 * again: that release sees the woken bit and must neither wake nor signal the gate. Waiter then takes
 * and releases it. DriverUnload prints the mutex: Count 1 (free, no waiter), gate not signalled. */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

static FAST_MUTEX g_mutex;

static VOID NTAPI Holder(PVOID context)
{
    LARGE_INTEGER ms;
    UNREFERENCED_PARAMETER(context);
    ms.QuadPart = -10000;
    ExAcquireFastMutex(&g_mutex);
    KeDelayExecutionThread(KernelMode, FALSE, &ms);
    ExReleaseFastMutex(&g_mutex);
    ExAcquireFastMutex(&g_mutex);
    ExReleaseFastMutex(&g_mutex);
}

static VOID NTAPI Waiter(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    ExAcquireFastMutex(&g_mutex);
    ExReleaseFastMutex(&g_mutex);
}

static VOID NTAPI Unload(PDRIVER_OBJECT driver)
{
    UNREFERENCED_PARAMETER(driver);
    DbgPrint("Count %d, Contention %u, gate %d\n", g_mutex.Count, g_mutex.Contention,
             g_mutex.Event.Header.SignalState);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(path);
    ExInitializeFastMutex(&g_mutex);
    status = start_thread(Holder, NULL);
    if (NT_SUCCESS(status))
        status = start_thread(Waiter, NULL);
    if (!NT_SUCCESS(status))
        return status;
    driver->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
