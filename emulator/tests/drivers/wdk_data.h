/* The thread type as the WDK's wdm.h declares it: `extern POBJECT_TYPE *PsThreadType;`, no dllimport,
 * so the driver's symbol is its import address table slot, which holds the address of ntoskrnl's
 * variable `POBJECT_TYPE PsThreadType`, and `*PsThreadType` is the type. mingw-w64's wdm.h adds
 * dllimport to the same declaration: its `*PsThreadType` is one load further, the OBJECT_TYPE's first
 * field. The test drivers name the slot directly to read it the WDK's way. Include after ntddk.h. */
#pragma once

extern POBJECT_TYPE *__imp_PsThreadType;
#define WdkPsThreadType __imp_PsThreadType
