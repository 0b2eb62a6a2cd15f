"""tdemu: run TestDriver.sys in an emulated Windows kernel (speakeasy + unicorn) and report what
a kernel debugger would show: threads, waits, FAST_MUTEX state, files, Driver Verifier-style findings."""

__version__ = "0.1.0"
