/* KfRaiseIrql and KeLowerIrql called through their import slots (mingw-w64's amd64 wdm.h makes
 * them inline CR8 writes): a legal raise PASSIVE_LEVEL -> APC_LEVEL and a legal lowering back, a
 * "raise" to PASSIVE_LEVEL from APC_LEVEL (it lowers), a "lowering" to APC_LEVEL from
 * PASSIVE_LEVEL (it raises), and a legal lowering back to PASSIVE_LEVEL. */
#define KfRaiseIrql InlineKfRaiseIrql
#define KeLowerIrql InlineKeLowerIrql
#include <ntddk.h>
#undef KfRaiseIrql
#undef KeLowerIrql

__declspec(dllimport) KIRQL KfRaiseIrql(KIRQL new_irql);
__declspec(dllimport) VOID KeLowerIrql(KIRQL new_irql);

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    KIRQL up, down;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    up = KfRaiseIrql(APC_LEVEL);
    KeLowerIrql(PASSIVE_LEVEL);
    KfRaiseIrql(APC_LEVEL);
    down = KfRaiseIrql(PASSIVE_LEVEL);
    KeLowerIrql(APC_LEVEL);
    KeLowerIrql(PASSIVE_LEVEL);
    DbgPrint("raised from %d, then from %d; now %d\n", up, down, KeGetCurrentIrql());
    return STATUS_SUCCESS;
}
