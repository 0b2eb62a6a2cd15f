/* DriverEntry reads SIZE bytes (1 or 8) through a pointer to 0x10. */
#include <ntddk.h>

#if SIZE == 1
typedef UCHAR value_t;
#else
typedef ULONG64 value_t;
#endif

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    volatile value_t *p = (volatile value_t *)(ULONG_PTR)0x10;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    DbgPrint("%d\n", (int)*p);
    return STATUS_SUCCESS;
}
