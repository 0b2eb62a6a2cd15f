//! Linux stand-in for Microsoft's `wdk-sys` 0.5.2, for WDM drivers.
//!
//! The real crate's API. `src/generated/` is bindgen's output for mingw-w64's
//! DDK headers (`generate.sh`), with the WDK's declarations where `wdk-sys.h`
//! says they differ.

#![no_std]

/// C types with Windows' sizes (LLP64), also on the Linux host of the unit tests.
#[allow(non_camel_case_types, missing_docs)]
pub mod ctypes {
    pub type c_char = i8;
    pub type c_schar = i8;
    pub type c_uchar = u8;
    pub type c_short = i16;
    pub type c_ushort = u16;
    pub type c_int = i32;
    pub type c_uint = u32;
    pub type c_long = i32;
    pub type c_ulong = u32;
    pub type c_longlong = i64;
    pub type c_ulonglong = u64;
    pub type c_float = f32;
    pub type c_double = f64;
    pub use core::ffi::c_void;
}

#[cfg(driver_model__driver_type = "WDM")]
pub use crate::{constants::*, types::*};

#[cfg(driver_model__driver_type = "WDM")]
#[allow(
    missing_docs,
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    unnecessary_transmutes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks
)]
mod types {
    include!("generated/types.rs");
}

#[cfg(driver_model__driver_type = "WDM")]
#[allow(missing_docs, non_upper_case_globals, clippy::all, clippy::pedantic)]
mod constants {
    use crate::types::*;

    include!("generated/constants.rs");
    include!("generated/status.rs");
}

/// Functions declared by the DDK headers (the real crate's `ntddk` module).
#[cfg(driver_model__driver_type = "WDM")]
#[allow(missing_docs, non_snake_case, clippy::all, clippy::pedantic)]
pub mod ntddk {
    use crate::types::*;

    include!("generated/ntddk.rs");

    // The kernel's import library (made by build.rs), except in host unit tests.
    #[cfg(not(any(test, feature = "suppress-wdk-linking")))]
    #[link(name = "ntoskrnl", kind = "static", modifiers = "-bundle")]
    unsafe extern "C" {}
}

/// The real crate's `test-stubs`: a `DriverEntry` for host unit test binaries.
#[cfg(all(feature = "test-stubs", driver_model__driver_type = "WDM"))]
pub mod test_stubs {
    use crate::{NTSTATUS, PCUNICODE_STRING, PDRIVER_OBJECT};

    /// Stands in for `DriverEntry` in test binaries; never called.
    ///
    /// # Safety
    ///
    /// None: it does nothing.
    // SAFETY: as in the real wdk-sys; a driver exporting `DriverEntry` in its
    // tests too fails to link, as on Windows.
    #[unsafe(export_name = "DriverEntry")]
    pub const unsafe extern "system" fn driver_entry_stub(
        _driver: PDRIVER_OBJECT,
        _registry_path: PCUNICODE_STRING,
    ) -> NTSTATUS {
        0
    }
}

// LLVM references `_fltused` for floating point types, even soft floats.
#[allow(missing_docs)]
// SAFETY: no other crate of a driver defines `_fltused`.
#[unsafe(no_mangle)]
pub static _fltused: () = ();

/// Unwinding stubs the real wdk-sys defines for `panic = "abort"` builds.
macro_rules! unwind_stubs {
    ($($name:ident => $value:literal),*) => {$(
        #[cfg(panic = "abort")]
        #[allow(missing_docs)]
        // SAFETY: no other crate of a driver defines this symbol.
        #[unsafe(no_mangle)]
        pub const extern "system" fn $name() -> i32 {
            $value
        }
    )*};
}
unwind_stubs!(__CxxFrameHandler3 => 0, __CxxFrameHandler4 => 1, __GSHandlerCheck_EH4 => 2);

/// `NT_SUCCESS` of ntdef.h: a success or informational status (0 - 0x7FFFFFFF).
#[cfg(driver_model__driver_type = "WDM")]
#[must_use]
#[allow(non_snake_case)]
pub const fn NT_SUCCESS(nt_status: NTSTATUS) -> bool {
    nt_status >= 0
}

/// `NT_INFORMATION`, `NT_WARNING` and `NT_ERROR` of ntdef.h: the status's top two bits.
macro_rules! nt_severity {
    ($($(#[doc = $doc:literal])* $name:ident = $severity:literal;)*) => {$(
        $(#[doc = $doc])*
        #[cfg(driver_model__driver_type = "WDM")]
        #[must_use]
        #[allow(non_snake_case)]
        pub const fn $name(nt_status: NTSTATUS) -> bool {
            nt_status.cast_unsigned() >> 30 == $severity
        }
    )*};
}
nt_severity! {
    /// An informational status (0x40000000 - 0x7FFFFFFF).
    NT_INFORMATION = 1;
    /// A warning status (0x80000000 - 0xBFFFFFFF).
    NT_WARNING = 2;
    /// An error status (0xC0000000 - 0xFFFFFFFF).
    NT_ERROR = 3;
}

/// `PAGED_CODE()`: asserts in debug builds that the IRQL is at most `APC_LEVEL`.
#[cfg(driver_model__driver_type = "WDM")]
#[macro_export]
#[allow(non_snake_case)]
macro_rules! PAGED_CODE {
    () => {
        debug_assert!(unsafe { $crate::ntddk::KeGetCurrentIrql() <= $crate::APC_LEVEL as u8 });
    };
}
