/* File I/O while holding a spin lock: ZwCreateFile at DISPATCH_LEVEL. */
#include <ntddk.h>

static KSPIN_LOCK g_lock;

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    UNICODE_STRING name;
    OBJECT_ATTRIBUTES oa;
    IO_STATUS_BLOCK iosb;
    HANDLE file;
    KIRQL old;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    KeInitializeSpinLock(&g_lock);
    RtlInitUnicodeString(&name, L"\\DosDevices\\C:\\Temp\\locked.txt");
    InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
    KeAcquireSpinLock(&g_lock, &old);
    DbgPrint("IRQL under the spin lock: %d (was %d)\n", KeGetCurrentIrql(), old);
    status = ZwCreateFile(&file, GENERIC_WRITE, &oa, &iosb, NULL, FILE_ATTRIBUTE_NORMAL, 0, FILE_OVERWRITE_IF,
                          FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0);
    if (NT_SUCCESS(status))
        ZwClose(file);
    KeReleaseSpinLock(&g_lock, old);
    DbgPrint("IRQL after release: %d\n", KeGetCurrentIrql());
    return STATUS_SUCCESS;
}
