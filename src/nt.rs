//! What the seed and fixed drivers share: the header inlines and macros
//! wdk-sys cannot bind, the path buffers, and the seed's paths, counts and
//! bytes. Nothing here allocates or can panic.

use core::{mem::offset_of, ptr::null_mut};

use wdk_sys::{
    _EVENT_TYPE::SynchronizationEvent,
    BOOLEAN,
    FILE_RENAME_INFORMATION,
    FM_LOCK_BIT,
    HANDLE,
    NTSTATUS,
    OBJECT_ATTRIBUTES,
    PFAST_MUTEX,
    PUNICODE_STRING,
    PVOID,
    STATUS_BUFFER_OVERFLOW,
    STATUS_INVALID_PARAMETER,
    STATUS_SUCCESS,
    ULONG,
    WCHAR,
    ntddk::KeInitializeEvent,
};

/// `L"\\DosDevices\\C:\\Temp\\file_"`: the files `FileCreationThread` writes.
pub const TEMP_FILE_PREFIX: [WCHAR; 25] = ascii_utf16(r"\DosDevices\C:\Temp\file_");
/// `L"\\DosDevices\\C:\\Temp2\\NewFile_"`: where `FileMoveThread` moves them.
pub const MOVED_FILE_PREFIX: [WCHAR; 29] = ascii_utf16(r"\DosDevices\C:\Temp2\NewFile_");
/// `L".txt"`.
pub const TXT_SUFFIX: [WCHAR; 4] = ascii_utf16(".txt");
/// Number of files each thread handles (`for (int i = 0; i < 1000; i++)`).
pub const FILE_COUNT: u32 = 1000;
/// Number of writes per file (`for (int j = 0; j < 100; j++)`).
pub const WRITES_PER_FILE: u32 = 100;
/// `char dataToWrite[] = "Hello, World!\r\n";` with its NUL.
pub const DATA_TO_WRITE: [u8; 16] = *b"Hello, World!\r\n\0";
/// `sizeof(dataToWrite) - 1`: the 15 bytes written each time.
#[allow(clippy::cast_possible_truncation, reason = "15 bytes")]
pub const DATA_LENGTH: ULONG = (DATA_TO_WRITE.len() - 1) as ULONG;

/// Capacity, in `WCHARs`, of the seed's path buffers (`WCHAR filePathBuffer[150]`).
pub const PATH_CCH: usize = 150;
/// A path buffer as the seed declares it on the thread's stack.
pub type PathBuffer = [WCHAR; PATH_CCH];

/// The seed's `L"..."` literals, computed at compile time; fails to compile
/// unless the literal is ASCII and `N` long.
#[must_use]
pub const fn ascii_utf16<const N: usize>(text: &str) -> [WCHAR; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() == N, "N must be the literal's length");
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        assert!(bytes[i].is_ascii(), "only ASCII literals");
        out[i] = bytes[i] as WCHAR;
        i += 1;
    }
    out
}

/// `ExInitializeFastMutex` of wdm.h: a free mutex and its unsignalled
/// synchronization event.
///
/// # Safety
///
/// `fast_mutex` is writable and unused yet; IRQL <= `DISPATCH_LEVEL`.
pub unsafe fn ex_initialize_fast_mutex(fast_mutex: PFAST_MUTEX) {
    // SAFETY: writable and unused (the caller's contract).
    let fm = unsafe { &mut *fast_mutex };
    fm.Count = FM_LOCK_BIT.cast_signed();
    fm.Owner = null_mut();
    fm.Contention = 0;
    // SAFETY: a KEVENT in the writable FAST_MUTEX; IRQL <= DISPATCH_LEVEL.
    unsafe { KeInitializeEvent(&raw mut fm.Event, SynchronizationEvent, BOOLEAN::from(false)) };
}

/// `InitializeObjectAttributes` of ntdef.h (a macro in C).
#[must_use]
pub const fn initialize_object_attributes(
    object_name: PUNICODE_STRING,
    attributes: ULONG,
    root_directory: HANDLE,
    security_descriptor: PVOID,
) -> OBJECT_ATTRIBUTES {
    OBJECT_ATTRIBUTES {
        #[allow(clippy::cast_possible_truncation, reason = "48 bytes")]
        Length: size_of::<OBJECT_ATTRIBUTES>() as ULONG,
        RootDirectory: root_directory,
        ObjectName: object_name,
        Attributes: attributes,
        SecurityDescriptor: security_descriptor,
        SecurityQualityOfService: null_mut(),
    }
}

/// `RtlStringCchPrintfW(dest, cch, L"<prefix>%d<suffix>", number)` of
/// ntstrsafe.h: truncates with `STATUS_BUFFER_OVERFLOW`, always NUL-terminated;
/// an empty `dest` is `STATUS_INVALID_PARAMETER`. No `core::fmt`: it is several KiB.
pub fn rtl_string_cch_printf_w(
    dest: &mut [WCHAR],
    prefix: &[WCHAR],
    number: u32,
    suffix: &[WCHAR],
) -> NTSTATUS {
    let Some(capacity) = dest.len().checked_sub(1) else {
        return STATUS_INVALID_PARAMETER;
    };
    let mut digits = [0 as WCHAR; 10];
    let mut start = digits.len();
    let mut rest = number;
    for slot in digits.iter_mut().rev() {
        #[allow(clippy::cast_possible_truncation, reason = "a decimal digit")]
        {
            *slot = WCHAR::from(b'0') + (rest % 10) as WCHAR;
        }
        start -= 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let digits = digits.get(start..).unwrap_or_default();
    let text = prefix.iter().chain(digits).chain(suffix);
    let mut written = 0;
    for (slot, &unit) in dest.iter_mut().take(capacity).zip(text.clone()) {
        *slot = unit;
        written += 1;
    }
    if let Some(terminator) = dest.get_mut(written) {
        *terminator = 0;
    }
    if text.count() > capacity {
        STATUS_BUFFER_OVERFLOW
    } else {
        STATUS_SUCCESS
    }
}

/// `wcslen`, or the whole buffer if it holds no NUL.
#[must_use]
pub fn wcslen(buffer: &[WCHAR]) -> usize {
    buffer.iter().position(|&unit| unit == 0).unwrap_or(buffer.len())
}

/// A `FILE_RENAME_INFORMATION` with room for a whole [`PathBuffer`] (the
/// seed's has one `WCHAR` and the name overflows it).
#[repr(C)]
pub struct RenameBuffer {
    info: FILE_RENAME_INFORMATION,
    name_room: [WCHAR; PATH_CCH],
}

impl RenameBuffer {
    /// A zeroed buffer, as the seed's `RtlZeroMemory(&renameInfo, ...)`.
    #[must_use]
    pub const fn new() -> Self {
        // SAFETY: plain C data, for which all-zero bytes are valid (NULL, FALSE, 0).
        unsafe { core::mem::zeroed() }
    }

    /// Fills the buffer as the seed does (`new_name` cut at its NUL and at
    /// [`PATH_CCH`]); returns `sizeof(FILE_RENAME_INFORMATION) + FileNameLength`.
    pub fn fill(&mut self, new_name: &[WCHAR]) -> ULONG {
        *self = Self::new();
        let name = new_name.get(..wcslen(new_name)).unwrap_or_default();
        let name = name.get(..PATH_CCH).unwrap_or(name);
        #[allow(clippy::cast_possible_truncation, reason = "at most 300 bytes")]
        let file_name_length = size_of_val(name) as ULONG;
        self.info.__bindgen_anon_1.ReplaceIfExists = BOOLEAN::from(true);
        self.info.RootDirectory = null_mut();
        self.info.FileNameLength = file_name_length;
        #[allow(
            clippy::cast_ptr_alignment,
            reason = "FileName is at offset 20 of an 8-aligned repr(C) structure"
        )]
        let file_name = (&raw mut *self)
            .cast::<u8>()
            .wrapping_add(offset_of!(FILE_RENAME_INFORMATION, FileName))
            .cast::<WCHAR>();
        // SAFETY: `file_name`, WCHAR-aligned and derived from the whole buffer, has
        // room for PATH_CCH WCHARs (`name_room`); `name`, at most that, is elsewhere.
        unsafe { core::ptr::copy_nonoverlapping(name.as_ptr(), file_name, name.len()) };
        #[allow(clippy::cast_possible_truncation, reason = "24 bytes")]
        let header = size_of::<FILE_RENAME_INFORMATION>() as ULONG;
        header + file_name_length
    }

    /// The buffer to pass to `ZwSetInformationFile`.
    pub const fn as_mut_ptr(&mut self) -> PVOID {
        (&raw mut *self).cast()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::{string::String, vec::Vec};

    use super::*;

    fn path(prefix: &[WCHAR], number: u32) -> (NTSTATUS, PathBuffer) {
        let mut buffer = [0xAAAA; PATH_CCH];
        let status = rtl_string_cch_printf_w(&mut buffer, prefix, number, &TXT_SUFFIX);
        (status, buffer)
    }

    fn text(buffer: &[WCHAR]) -> String {
        String::from_utf16(&buffer[..wcslen(buffer)]).unwrap()
    }

    #[test]
    fn paths_are_formatted_like_the_seed_for_0_9_10_999_and_the_largest() {
        for (number, expected) in [
            (0, r"\DosDevices\C:\Temp\file_0.txt"),
            (9, r"\DosDevices\C:\Temp\file_9.txt"),
            (10, r"\DosDevices\C:\Temp\file_10.txt"),
            (999, r"\DosDevices\C:\Temp\file_999.txt"),
            (u32::MAX, r"\DosDevices\C:\Temp\file_4294967295.txt"),
        ] {
            let (status, buffer) = path(&TEMP_FILE_PREFIX, number);
            assert_eq!(status, STATUS_SUCCESS);
            assert_eq!(text(&buffer), expected);
            // NUL-terminated right after the text, the rest untouched.
            assert_eq!(buffer[expected.len()], 0);
            assert_eq!(buffer[expected.len() + 1], 0xAAAA);
        }
        let (status, buffer) = path(&MOVED_FILE_PREFIX, 999);
        assert_eq!(status, STATUS_SUCCESS);
        assert_eq!(text(&buffer), r"\DosDevices\C:\Temp2\NewFile_999.txt");
    }

    #[test]
    fn a_path_that_does_not_fit_is_truncated_and_terminated() {
        let mut small = [0xAAAA; 8];
        let status = rtl_string_cch_printf_w(&mut small, &TEMP_FILE_PREFIX, 7, &TXT_SUFFIX);
        assert_eq!(status, STATUS_BUFFER_OVERFLOW);
        assert_eq!(text(&small), r"\DosDev");
        assert_eq!(small[7], 0);
        // Exactly full: the 10 WCHARs of the text plus its NUL, no slot spare.
        let mut exact = [0xAAAA; 11];
        let prefix = ascii_utf16::<5>("file_");
        let status = rtl_string_cch_printf_w(&mut exact, &prefix, 7, &TXT_SUFFIX);
        assert_eq!(status, STATUS_SUCCESS);
        assert_eq!(text(&exact), "file_7.txt");
        assert_eq!(exact[10], 0);
        let mut one_short = [0xAAAA; 10];
        let status = rtl_string_cch_printf_w(&mut one_short, &prefix, 7, &TXT_SUFFIX);
        assert_eq!(status, STATUS_BUFFER_OVERFLOW);
        assert_eq!(text(&one_short), "file_7.tx");
    }

    #[test]
    fn an_empty_destination_is_an_invalid_parameter() {
        let status = rtl_string_cch_printf_w(&mut [], &TEMP_FILE_PREFIX, 1, &TXT_SUFFIX);
        assert_eq!(status, STATUS_INVALID_PARAMETER);
    }

    #[test]
    fn rename_buffer_holds_the_whole_name_and_the_seed_length() {
        let (_, new_name) = path(&MOVED_FILE_PREFIX, 999);
        let expected = r"\DosDevices\C:\Temp2\NewFile_999.txt";
        let mut buffer = RenameBuffer::new();
        let length = buffer.fill(&new_name);
        // sizeof(FILE_RENAME_INFORMATION) + FileNameLength, as the seed passes.
        assert_eq!(size_of::<FILE_RENAME_INFORMATION>(), 24);
        assert_eq!(length as usize, 24 + 2 * expected.len());
        assert!(length as usize <= size_of::<RenameBuffer>());

        // SAFETY: RenameBuffer is plain C data; reading its bytes is fine.
        let bytes: &[u8] = unsafe {
            core::slice::from_raw_parts((&raw const buffer).cast(), size_of::<RenameBuffer>())
        };
        assert_eq!(bytes[0], 1, "ReplaceIfExists = TRUE");
        assert_eq!(&bytes[1..4], &[0, 0, 0], "the rest of the Flags union");
        assert_eq!(&bytes[8..16], &[0; 8], "RootDirectory = NULL");
        let file_name_length = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
        assert_eq!(file_name_length as usize, 2 * expected.len());
        let name: Vec<u16> = bytes[20..20 + file_name_length as usize]
            .chunks(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        assert_eq!(String::from_utf16(&name).unwrap(), expected);
        assert!(bytes[20 + file_name_length as usize..].iter().all(|&b| b == 0));
    }

    #[test]
    fn rename_buffer_takes_a_full_path_buffer_without_overflow() {
        let full = [WCHAR::from(b'x'); PATH_CCH];
        let mut buffer = RenameBuffer::new();
        let length = buffer.fill(&full);
        assert_eq!(length as usize, 24 + 2 * PATH_CCH);
        assert!(length as usize <= size_of::<RenameBuffer>());
    }

    #[test]
    fn object_attributes_are_initialized_like_the_macro() {
        let mut name = wdk_sys::UNICODE_STRING::default();
        let root: HANDLE = 0x1111_0000 as HANDLE;
        let descriptor: PVOID = 0x2222_0000 as PVOID;
        let flags = wdk_sys::OBJ_CASE_INSENSITIVE | wdk_sys::OBJ_KERNEL_HANDLE;
        let attributes = initialize_object_attributes(&raw mut name, flags, root, descriptor);
        assert_eq!(attributes.Length, 48);
        assert_eq!(attributes.Length as usize, size_of::<OBJECT_ATTRIBUTES>());
        assert_eq!(attributes.RootDirectory, root);
        assert_eq!(attributes.ObjectName, &raw mut name);
        assert_eq!(attributes.Attributes, 0x40 | 0x200);
        assert_eq!(attributes.SecurityDescriptor, descriptor);
        assert!(attributes.SecurityQualityOfService.is_null());
    }

    /// What the host stand-in for `KeInitializeEvent` was called with.
    static EVENT_INIT: std::sync::Mutex<Vec<(usize, i32, u8)>> = std::sync::Mutex::new(Vec::new());

    /// Host stand-in for the kernel's `KeInitializeEvent`: records its arguments.
    #[unsafe(no_mangle)]
    extern "C" fn KeInitializeEvent(event: wdk_sys::PRKEVENT, kind: i32, state: u8) {
        EVENT_INIT.lock().unwrap().push((event as usize, kind, state));
    }

    #[test]
    fn fast_mutex_is_initialized_like_the_inline() {
        // SAFETY: all-zero bytes are a valid FAST_MUTEX value.
        let mut fast_mutex: wdk_sys::FAST_MUTEX = unsafe { core::mem::zeroed() };
        fast_mutex.Count = 77;
        fast_mutex.Contention = 5;
        fast_mutex.Owner = 0x1234 as _;
        // SAFETY: a local FAST_MUTEX that nothing else uses.
        unsafe { ex_initialize_fast_mutex(&raw mut fast_mutex) };
        assert_eq!(fast_mutex.Count, 1, "FM_LOCK_BIT: free");
        assert!(fast_mutex.Owner.is_null());
        assert_eq!(fast_mutex.Contention, 0);
        let event = &raw mut fast_mutex.Event as usize;
        let calls = EVENT_INIT.lock().unwrap();
        assert!(
            calls.contains(&(event, SynchronizationEvent, 0)),
            "KeInitializeEvent(&Event, SynchronizationEvent, FALSE) in {calls:?}"
        );
    }
}
