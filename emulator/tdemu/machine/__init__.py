"""The machine below the kernel model: the CPU and its memory (unicorn, with the driver image
mapped by speakeasy) and the scheduler that runs threads on it. Nothing here knows NT: the kernel
model (`tdemu.nt`) drives it through the callbacks it installs."""

from .cpu import Cpu, CpuEvents, phys, PHYS_LIMIT
from .scheduler import BLOCK, Scheduler, Thread, Wait

__all__ = ["BLOCK", "Cpu", "CpuEvents", "PHYS_LIMIT", "Scheduler", "Thread", "Wait", "phys"]
