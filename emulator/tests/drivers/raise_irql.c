/* KfRaiseIrql called through its import slot (mingw-w64's amd64 wdm.h makes it an inline CR8
 * write): a legal raise PASSIVE_LEVEL -> APC_LEVEL, then a "raise" to PASSIVE_LEVEL from
 * APC_LEVEL, which lowers, then a KeLowerIrql back to PASSIVE_LEVEL. */
#define KfRaiseIrql InlineKfRaiseIrql
#include <ntddk.h>
#undef KfRaiseIrql

__declspec(dllimport) KIRQL KfRaiseIrql(KIRQL new_irql);

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    KIRQL up, down;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    up = KfRaiseIrql(APC_LEVEL);
    down = KfRaiseIrql(PASSIVE_LEVEL);
    KeLowerIrql(PASSIVE_LEVEL);
    DbgPrint("raised from %d, then from %d; now %d\n", up, down, KeGetCurrentIrql());
    return STATUS_SUCCESS;
}
