/* -DUSE=1: DriverUnload does not delete the device DriverEntry created;
 * -DUSE=2: DriverEntry creates a device, then fails without deleting it. */
#include <ntddk.h>

static VOID NTAPI Unload(PDRIVER_OBJECT driver)
{
    UNREFERENCED_PARAMETER(driver);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    PDEVICE_OBJECT device;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(path);
    status = IoCreateDevice(driver, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    driver->DriverUnload = Unload;
#if USE == 2
    return STATUS_INSUFFICIENT_RESOURCES;
#else
    return STATUS_SUCCESS;
#endif
}
