"""How a component of the kernel model exports its routines: each component module (`ke`, `ex`, ...)
creates one `Component` and registers each routine it models as a small function named after it
(`@ke.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)`). A handler takes the kernel `k`, reads
its arguments through `k.cpu` and returns RAX: None for VOID, BLOCK when the calling thread blocked.
`max_irql` is the documented maximum IRQL (checked before every call); `footprint(k)` names what the
call touches that another thread can see, for schedule exploration (None: nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

NTOSKRNL = "ntoskrnl.exe"
HAL = "hal.dll"


@dataclass(frozen=True)
class Export:
    name: str
    dll: str
    component: str
    handler: object  # handler(k) -> int | None | BLOCK
    max_irql: int | None
    footprint: object  # footprint(k) -> frozenset | None, or None: touches nothing shared


class Component:
    def __init__(self, name: str, dll: str = NTOSKRNL):
        self.name = name
        self.dll = dll
        self.exports: dict[str, Export] = {}

    def export(self, name: str | None = None, max_irql: int | None = None, footprint=None, aliases: dict | None = None):
        """Register the decorated handler under its own name (or `name`), and under each alias
        (alias name -> its maximum IRQL, as each export has its own documented maximum)."""

        def deco(fn):
            self._add(name or fn.__name__, fn, max_irql, footprint)
            for alias, alias_irql in (aliases or {}).items():
                self._add(alias, fn, alias_irql, footprint)
            return fn
        return deco

    def export_each(self, fn, args_by_name: dict, max_irql: int | None = None, footprint=None) -> None:
        """For routines that differ only in what they pass on: register, for each name -> args, a
        handler named `name` that returns fn(k, name, *args)."""
        for name, args in args_by_name.items():
            def handler(k, name=name, args=args):
                return fn(k, name, *args)
            handler.__name__ = handler.__qualname__ = name
            handler.__module__ = fn.__module__  # the component's module, for the table of routines
            self._add(name, handler, max_irql, footprint)

    def _add(self, name, fn, max_irql, footprint) -> None:
        if name in self.exports:
            raise ValueError(f"{self.name}: {name} registered twice")
        self.exports[name] = Export(name, self.dll, self.name, fn, max_irql, footprint)


# ---------------------------------------------------------------- footprints (schedule exploration)
# A footprint is a frozenset of what a call touches that another thread can see: ("obj", address)
# for a kernel object, ("fs",) for the file system, ("handle", value), ... Two calls are dependent
# (their order can matter) when their footprints meet; "*" meets everything.

EVERYTHING = frozenset({"*"})
FILE_SYSTEM = frozenset({("fs",)})


def dependent(a: frozenset, b: frozenset) -> bool:
    return bool(a & b) or "*" in a or "*" in b


def arg0_object(k) -> frozenset:
    """The call works on the kernel object its first argument points to."""
    return frozenset({("obj", k.cpu.arg0())})


def file_system(_k) -> frozenset:
    return FILE_SYSTEM


def everything(_k) -> frozenset:
    """The call can change what any other call sees (it frees memory, or stops the machine)."""
    return EVERYTHING
