/* A satisfied wait resets a synchronization event and leaves a notification event signalled:
 * each event is created signalled, waited for, then waited for with a zero time-out. */
#include <ntddk.h>

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    KEVENT sync, notification;
    LARGE_INTEGER zero;
    NTSTATUS first, second;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    zero.QuadPart = 0;
    KeInitializeEvent(&sync, SynchronizationEvent, TRUE);
    first = KeWaitForSingleObject(&sync, Executive, KernelMode, FALSE, NULL);
    second = KeWaitForSingleObject(&sync, Executive, KernelMode, FALSE, &zero);
    DbgPrint("synchronization: %x then %x, state %d\n", first, second, KeReadStateEvent(&sync));
    KeInitializeEvent(&notification, NotificationEvent, TRUE);
    first = KeWaitForSingleObject(&notification, Executive, KernelMode, FALSE, NULL);
    second = KeWaitForSingleObject(&notification, Executive, KernelMode, FALSE, &zero);
    DbgPrint("notification: %x then %x, state %d\n", first, second, KeReadStateEvent(&notification));
    return STATUS_SUCCESS;
}
