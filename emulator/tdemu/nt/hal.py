"""hal: the routines a driver imports from hal.dll (ReactOS hal/halx86) that the model serves."""

from __future__ import annotations

from .api import HAL, Component
from .defs import HIGH_LEVEL

hal = Component("hal", HAL)

PERFORMANCE_FREQUENCY = 10_000_000  # counts per second: one count per 100 ns of the virtual clock


@hal.export(max_irql=HIGH_LEVEL)
def KeStallExecutionProcessor(k):
    """Busy-waits the given microseconds: the virtual clock advances, no other thread runs."""
    k.ke.virtual_time += (k.cpu.arg0() & 0xFFFFFFFF) * 10


@hal.export(max_irql=HIGH_LEVEL)
def KeQueryPerformanceCounter(k):
    freq = k.cpu.arg0()
    if freq:
        k.cpu.w64(freq, PERFORMANCE_FREQUENCY)
    return k.ke.virtual_time
