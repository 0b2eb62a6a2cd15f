/* -DUSE=1: a thread returns inside a critical region; 2: inside a guarded region;
 * 3: DriverEntry closes a thread handle twice; 4: DriverEntry closes NULL. */
#include <ntddk.h>

static VOID NTAPI Worker(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
#if USE == 1
    KeEnterCriticalRegion();
#elif USE == 2
    KeEnterGuardedRegion();
#endif
    DbgPrint("worker returns\n");
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    HANDLE thread;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, Worker, NULL);
    if (!NT_SUCCESS(status))
        return status;
    ZwClose(thread);
#if USE == 3
    status = ZwClose(thread);
    DbgPrint("second ZwClose: %08x\n", status);
#elif USE == 4
    status = ZwClose(NULL);
    DbgPrint("ZwClose(NULL): %08x\n", status);
#endif
    return STATUS_SUCCESS;
}
