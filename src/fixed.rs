//! The fixed driver: the seed's demo without the seed's defects.
//!
//! 1000 files of 100 lines are written to `C:\Temp`, then moved to
//! `C:\Temp2`. Same routines, in the same order, with the same names as
//! `src/seed.rs`, so that `diff src/seed.rs src/fixed.rs` lists the fixes;
//! each fix carries a comment saying what the seed did.
//!
//! The `FAST_MUTEX` gives the two threads mutual exclusion, the
//! `files_created` event their order. Unload waits for both threads before it
//! deletes the device whose extension they use ([`start_thread`]).

use core::ptr::null_mut;

use wdk::nt_success;
use wdk_sys::{
    _DPFLTR_TYPE::DPFLTR_IHVDRIVER_ID,
    _EVENT_TYPE::NotificationEvent,
    _FILE_INFORMATION_CLASS::FileRenameInformation,
    _KWAIT_REASON::Executive,
    _MODE::KernelMode,
    BOOLEAN,
    DPFLTR_ERROR_LEVEL,
    FAST_MUTEX,
    FILE_ALL_ACCESS,
    FILE_ATTRIBUTE_NORMAL,
    FILE_DEVICE_SECURE_OPEN,
    FILE_DEVICE_UNKNOWN,
    FILE_OVERWRITE_IF,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    FILE_SYNCHRONOUS_IO_NONALERT,
    GENERIC_WRITE,
    HANDLE,
    IO_NO_INCREMENT,
    IO_STATUS_BLOCK,
    KEVENT,
    KPRIORITY,
    KPROCESSOR_MODE,
    NTSTATUS,
    OBJ_CASE_INSENSITIVE,
    OBJ_KERNEL_HANDLE,
    PCUNICODE_STRING,
    PDEVICE_OBJECT,
    PDRIVER_OBJECT,
    PFAST_MUTEX,
    POBJECT_TYPE,
    PVOID,
    STATUS_SUCCESS,
    SYNCHRONIZE,
    ULONG,
    UNICODE_STRING,
    ntddk::{
        DbgPrintEx,
        ExAcquireFastMutexUnsafe,
        ExReleaseFastMutexUnsafe,
        IoCreateDevice,
        IoDeleteDevice,
        KeEnterCriticalRegion,
        KeInitializeEvent,
        KeLeaveCriticalRegion,
        KeSetEvent,
        KeWaitForSingleObject,
        ObReferenceObjectByHandle,
        ObfDereferenceObject,
        PsCreateSystemThread,
        RtlInitUnicodeString,
        ZwClose,
        ZwCreateFile,
        ZwOpenFile,
        ZwSetInformationFile,
        ZwWaitForSingleObject,
        ZwWriteFile,
    },
};

use crate::nt::{
    DATA_LENGTH,
    DATA_TO_WRITE,
    FILE_COUNT,
    MOVED_FILE_PREFIX,
    PATH_CCH,
    PathBuffer,
    RenameBuffer,
    TEMP_FILE_PREFIX,
    TXT_SUFFIX,
    WRITES_PER_FILE,
    ex_initialize_fast_mutex,
    initialize_object_attributes,
    rtl_string_cch_printf_w,
};

// The kernel's thread object type: the variable `POBJECT_TYPE PsThreadType`,
// a data export of ntoskrnl.exe. The WDK declares it `extern POBJECT_TYPE
// *PsThreadType;` (the import address table slot under its bare name, read as
// `*PsThreadType`), and wdk-sys copies that. Declared here as a dllimport of
// the variable itself, it is read through `__imp_PsThreadType`, which the
// import library defines whatever kind of export it marks it.
#[cfg_attr(not(test), link(name = "ntoskrnl"))]
unsafe extern "C" {
    /// `PsThreadType`: the object type of thread objects.
    static PsThreadType: POBJECT_TYPE;
}

/// `KernelMode` as the `KPROCESSOR_MODE` the wait and reference routines take.
#[allow(clippy::cast_possible_truncation, reason = "MODE values are 0 and 1")]
const KERNEL_MODE: KPROCESSOR_MODE = KernelMode as KPROCESSOR_MODE;

/// `SYNC_RESOURCES`: the device extension, shared by both threads.
#[repr(C)]
pub struct SyncResources {
    /// `FAST_MUTEX` object for synchronized access to the files.
    pub file_mutex: FAST_MUTEX,
    /// Notification event set by `FileCreationThread` when its loop has
    /// ended: `FileMoveThread` waits for it before it moves anything.
    pub files_created: KEVENT,
    /// The two threads, referenced, so that unload can wait for them; NULL
    /// for a thread not started, or not referenced ([`wait_for_thread`]).
    pub threads: [PVOID; 2],
}

/// Takes the `FAST_MUTEX` and stays at `PASSIVE_LEVEL`.
///
/// The seed's `ExAcquireFastMutex` raises the IRQL to `APC_LEVEL`, and the
/// thread then calls `ZwCreateFile` and the other Zw file routines, which must
/// be called at `PASSIVE_LEVEL` with special kernel APCs enabled (I/O
/// completion is delivered by one). `KeEnterCriticalRegion` disables only
/// normal kernel APCs, so the thread cannot be suspended while it holds the
/// mutex, which is what `ExAcquireFastMutexUnsafe` requires, and the IRQL stays
/// `PASSIVE_LEVEL`. An `ERESOURCE` would do as well, but the `FAST_MUTEX` stays
/// the object the demo is about (`dt nt!_FAST_MUTEX` reads the same structure).
///
/// # Safety
///
/// `mutex` points to an initialised `FAST_MUTEX` in nonpaged memory, which
/// the current thread does not hold (fast mutexes are not recursive); IRQL
/// `PASSIVE_LEVEL`.
unsafe fn acquire(mutex: PFAST_MUTEX) {
    // SAFETY: no precondition beyond IRQL <= APC_LEVEL, which the caller
    // guarantees.
    unsafe { KeEnterCriticalRegion() };
    // SAFETY: normal kernel APCs are disabled (critical region), and `mutex`
    // is an initialised FAST_MUTEX in nonpaged memory that this thread does
    // not own already (the caller's contract), as ExAcquireFastMutexUnsafe
    // requires.
    unsafe { ExAcquireFastMutexUnsafe(mutex) };
}

/// Gives the `FAST_MUTEX` back and leaves the critical region [`acquire`]
/// entered.
///
/// # Safety
///
/// The current thread holds `mutex`, acquired with [`acquire`].
unsafe fn release(mutex: PFAST_MUTEX) {
    // SAFETY: the caller holds `mutex` from ExAcquireFastMutexUnsafe, still
    // inside the critical region.
    unsafe { ExReleaseFastMutexUnsafe(mutex) };
    // SAFETY: pairs with the KeEnterCriticalRegion of `acquire`.
    unsafe { KeLeaveCriticalRegion() };
}

/// Sets `files_created`, which `FileMoveThread` waits for before it moves
/// anything.
///
/// # Safety
///
/// `files_created` is the initialised event of a live device extension; IRQL
/// `<= DISPATCH_LEVEL`.
unsafe fn signal_files_created(files_created: *mut KEVENT) {
    #[allow(clippy::cast_possible_wrap, reason = "IO_NO_INCREMENT is 0")]
    // SAFETY: an initialised event in nonpaged memory (the caller's
    // contract); Wait FALSE, so no wait must follow.
    let _ = unsafe {
        KeSetEvent(
            files_created,
            IO_NO_INCREMENT as KPRIORITY,
            BOOLEAN::from(false),
        )
    };
}

/// Logs a failure and its `NTSTATUS` with `DbgPrintEx` (the seed ignores every
/// status and logs nothing), as an error of the component for independent
/// drivers: plain `DbgPrint` is an info-level message, which the kernel's
/// default debug filter drops. The format is a C string literal whose
/// conversions match the arguments.
macro_rules! log_failure {
    ($format:literal $(, $argument:expr)* $(,)?) => {
        // SAFETY: a NUL-terminated format whose conversions (%ws: a
        // NUL-terminated wide string, %08x: a 32-bit value) match the
        // arguments. Unicode conversions are formatted only at PASSIVE_LEVEL,
        // where every caller in this driver runs.
        let _ = unsafe {
            DbgPrintEx(IHV_DRIVER, DPFLTR_ERROR_LEVEL, $format.as_ptr(), $($argument),*)
        };
    };
}

/// `DPFLTR_IHVDRIVER_ID`: the debug-output component of independent drivers.
#[allow(clippy::cast_sign_loss, reason = "DPFLTR_IHVDRIVER_ID is 77")]
const IHV_DRIVER: ULONG = DPFLTR_IHVDRIVER_ID as ULONG;

/// `FileCreationThread`: takes the `FAST_MUTEX` once, writes 1000 files of 100
/// lines each into `C:\Temp`, gives the mutex back, and sets `files_created`.
///
/// The C declares it `NTSTATUS FileCreationThread(PVOID)` and passes it as a
/// `KSTART_ROUTINE`, which returns `VOID`; here it has the `KSTART_ROUTINE`
/// signature.
///
/// # Safety
///
/// `context` is the device extension ([`SyncResources`]) set up by
/// [`driver_entry`]; called by the kernel at `PASSIVE_LEVEL`.
unsafe extern "C" fn file_creation_thread(context: PVOID) {
    let sync_res = context.cast::<SyncResources>();
    // SAFETY: `context` is the live device extension; taking a field's
    // address reads nothing.
    let file_mutex = unsafe { &raw mut (*sync_res).file_mutex };
    // SAFETY: as above.
    let files_created = unsafe { &raw mut (*sync_res).files_created };
    let mut uni_file_path = UNICODE_STRING::default();
    let mut file_path_buffer: PathBuffer = [0; PATH_CCH];
    let mut data_to_write = DATA_TO_WRITE;
    let mut io_status_block = IO_STATUS_BLOCK::default();

    // Acquire the FAST_MUTEX, once: the seed acquires it a second time here and
    // waits for itself forever (fast mutexes cannot be acquired recursively).
    // SAFETY: `context` is the live device extension (it outlives this
    // thread: see `start_thread`), whose mutex driver_entry initialised;
    // PASSIVE_LEVEL.
    unsafe { acquire(file_mutex) };

    for i in 0..FILE_COUNT {
        // The C ignores RtlStringCchPrintfW's status; the buffer always fits.
        let _ = rtl_string_cch_printf_w(&mut file_path_buffer, &TEMP_FILE_PREFIX, i, &TXT_SUFFIX);
        // SAFETY: `file_path_buffer` is NUL-terminated by the call above and
        // outlives every use of `uni_file_path` in this iteration.
        unsafe { RtlInitUnicodeString(&raw mut uni_file_path, file_path_buffer.as_ptr()) };

        let mut obj_attributes = initialize_object_attributes(
            &raw mut uni_file_path,
            OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            null_mut(),
            null_mut(),
        );

        let mut h_file: HANDLE = null_mut();
        // SAFETY: every pointer refers to a live local of this frame.
        let status = unsafe {
            ZwCreateFile(
                &raw mut h_file,
                GENERIC_WRITE,
                &raw mut obj_attributes,
                &raw mut io_status_block,
                null_mut(),
                FILE_ATTRIBUTE_NORMAL,
                0,
                FILE_OVERWRITE_IF,
                FILE_SYNCHRONOUS_IO_NONALERT,
                null_mut(),
                0,
            )
        };

        if nt_success(status) {
            for _ in 0..WRITES_PER_FILE {
                // SAFETY: `h_file` is open for writing; the buffer holds at
                // least the 15 bytes written and outlives the synchronous call.
                let status = unsafe {
                    ZwWriteFile(
                        h_file,
                        null_mut(),
                        None,
                        null_mut(),
                        &raw mut io_status_block,
                        data_to_write.as_mut_ptr().cast(),
                        DATA_LENGTH,
                        null_mut(),
                        null_mut(),
                    )
                };
                // The seed ignores a failed write and tries the next 99.
                if !nt_success(status) {
                    log_failure!(
                        c"TestDriver: ZwWriteFile(%ws) failed: %08x\n",
                        file_path_buffer.as_ptr(),
                        status,
                    );
                    break;
                }
            }
            // SAFETY: `h_file` is a kernel handle this thread opened.
            let _ = unsafe { ZwClose(h_file) };
        } else {
            log_failure!(
                c"TestDriver: ZwCreateFile(%ws) failed: %08x\n",
                file_path_buffer.as_ptr(),
                status,
            );
        }
    }

    // Release the FAST_MUTEX
    // SAFETY: this thread holds the mutex, taken by `acquire`.
    unsafe { release(file_mutex) };

    // The seed gives the two threads no order: when FileMoveThread runs first,
    // it finds no file and the files stay in C:\Temp.
    // SAFETY: `files_created` was initialised by driver_entry and lives as
    // long as the extension, which outlives this thread; PASSIVE_LEVEL.
    unsafe { signal_files_created(files_created) };
}

/// `FileMoveThread`: waits until `FileCreationThread` has written the files,
/// takes the `FAST_MUTEX`, then moves each `C:\Temp\file_<i>.txt` to
/// `C:\Temp2\NewFile_<i>.txt`.
///
/// # Safety
///
/// As [`file_creation_thread`].
unsafe extern "C" fn file_move_thread(context: PVOID) {
    let sync_res = context.cast::<SyncResources>();
    // SAFETY: `context` is the live device extension; taking a field's
    // address reads nothing.
    let file_mutex = unsafe { &raw mut (*sync_res).file_mutex };
    // SAFETY: as above.
    let files_created = unsafe { &raw mut (*sync_res).files_created };
    let mut io_status_block = IO_STATUS_BLOCK::default();
    let mut old_file_path_buffer: PathBuffer = [0; PATH_CCH];
    let mut new_file_path_buffer: PathBuffer = [0; PATH_CCH];

    // The seed takes the mutex at once, whether the files exist or not.
    // SAFETY: `files_created` is an initialised notification event in the live
    // extension; PASSIVE_LEVEL, no mutex held, no timeout.
    let status = unsafe {
        KeWaitForSingleObject(
            files_created.cast(),
            Executive,
            KERNEL_MODE,
            BOOLEAN::from(false),
            null_mut(),
        )
    };
    if !nt_success(status) {
        log_failure!(c"TestDriver: waiting for the files failed: %08x\n", status);
    }

    // Acquire the FAST_MUTEX
    // SAFETY: `context` is the live device extension (it outlives this
    // thread: see `start_thread`), whose mutex driver_entry initialised;
    // PASSIVE_LEVEL.
    unsafe { acquire(file_mutex) };

    for i in 0..FILE_COUNT {
        let _ =
            rtl_string_cch_printf_w(&mut old_file_path_buffer, &TEMP_FILE_PREFIX, i, &TXT_SUFFIX);
        let _ =
            rtl_string_cch_printf_w(&mut new_file_path_buffer, &MOVED_FILE_PREFIX, i, &TXT_SUFFIX);

        let mut old_file_path = UNICODE_STRING::default();
        let mut new_file_path = UNICODE_STRING::default();
        // SAFETY: both buffers are NUL-terminated and outlive the strings.
        unsafe { RtlInitUnicodeString(&raw mut old_file_path, old_file_path_buffer.as_ptr()) };
        // SAFETY: as above. The C initialises this string and never uses it.
        unsafe { RtlInitUnicodeString(&raw mut new_file_path, new_file_path_buffer.as_ptr()) };

        let mut obj_attributes = initialize_object_attributes(
            &raw mut old_file_path,
            OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            null_mut(),
            null_mut(),
        );

        let mut h_file: HANDLE = null_mut();
        // SAFETY: every pointer refers to a live local of this frame.
        let status = unsafe {
            ZwOpenFile(
                &raw mut h_file,
                FILE_ALL_ACCESS,
                &raw mut obj_attributes,
                &raw mut io_status_block,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                FILE_SYNCHRONOUS_IO_NONALERT,
            )
        };

        if nt_success(status) {
            // The C copies the name into a one-WCHAR FILE_RENAME_INFORMATION on
            // its stack (a buffer overflow); RenameBuffer has room for it.
            let mut rename_info = RenameBuffer::new();
            let length = rename_info.fill(&new_file_path_buffer);

            // SAFETY: `h_file` is open; the buffer holds `length` bytes of a
            // FILE_RENAME_INFORMATION and its name.
            let status = unsafe {
                ZwSetInformationFile(
                    h_file,
                    &raw mut io_status_block,
                    rename_info.as_mut_ptr(),
                    length,
                    FileRenameInformation,
                )
            };
            if !nt_success(status) {
                log_failure!(
                    c"TestDriver: renaming %ws failed: %08x\n",
                    old_file_path_buffer.as_ptr(),
                    status,
                );
            }
            // SAFETY: `h_file` is a kernel handle this thread opened.
            let _ = unsafe { ZwClose(h_file) };
        } else {
            log_failure!(
                c"TestDriver: ZwOpenFile(%ws) failed: %08x\n",
                old_file_path_buffer.as_ptr(),
                status,
            );
        }
    }

    // Release the FAST_MUTEX
    // SAFETY: this thread holds the mutex, taken by `acquire`.
    unsafe { release(file_mutex) };
}

/// `UnloadDriver`: waits for both threads to end, releases its references to
/// them, then deletes the device.
///
/// # Safety
///
/// Called by the I/O manager with the driver object whose device
/// [`driver_entry`] created.
unsafe extern "C" fn unload_driver(driver_object: PDRIVER_OBJECT) {
    // SAFETY: the I/O manager passes a valid driver object; its DeviceObject
    // is the device driver_entry created, not deleted yet.
    let device_object = unsafe { (*driver_object).DeviceObject };

    // The seed deletes the device while its threads still use the extension
    // (and their code, once the driver is unmapped).
    // SAFETY: the device is not deleted yet; its extension is the
    // SyncResources driver_entry initialised.
    let sync_res = unsafe { (*device_object).DeviceExtension }.cast::<SyncResources>();
    // SAFETY: as above; only unload touches `threads` after driver_entry.
    let threads = unsafe { &mut (*sync_res).threads };
    // NULL: a thread never started, or one DriverEntry could not reference and
    // waited for (wait_for_thread); had that wait failed, DriverUnload would be
    // NULL and this routine never called.
    for thread in threads.iter_mut().filter(|thread| !thread.is_null()) {
        // SAFETY: a referenced thread object (a dispatcher object, signalled
        // when the thread ends); unload runs at PASSIVE_LEVEL, no timeout.
        let status = unsafe {
            KeWaitForSingleObject(*thread, Executive, KERNEL_MODE, BOOLEAN::from(false), null_mut())
        };
        if !nt_success(status) {
            log_failure!(c"TestDriver: waiting for a thread failed: %08x\n", status);
        }
        // SAFETY: releases the reference driver_entry took; not used after.
        let _ = unsafe { ObfDereferenceObject(*thread) };
        *thread = null_mut();
    }

    // SAFETY: `device_object` was created by IoCreateDevice and not deleted;
    // no thread uses its extension any more.
    unsafe { IoDeleteDevice(device_object) };
}

/// Starts `routine` on a system thread with the device extension as its
/// context, and returns a referenced pointer to the thread for unload to wait
/// on. The seed keeps no reference, so its unload cannot wait.
///
/// Returns NULL if the thread could not be referenced: `DriverEntry` has then
/// waited for it here ([`wait_for_thread`]). Returns the `NTSTATUS` of
/// `PsCreateSystemThread` (logged) if the thread could not be started.
///
/// # Safety
///
/// `sync_res` is the initialised device extension of `driver_object`'s
/// device, which outlives the thread; IRQL `PASSIVE_LEVEL`.
unsafe fn start_thread(
    driver_object: PDRIVER_OBJECT,
    routine: unsafe extern "C" fn(PVOID),
    sync_res: *mut SyncResources,
) -> Result<PVOID, NTSTATUS> {
    let mut thread_handle: HANDLE = null_mut();
    // The thread routines have the KSTART_ROUTINE signature (the C casts
    // routines that return NTSTATUS).
    // SAFETY: the routine's context, the device extension, is initialised and
    // outlives the thread (the caller's contract); PASSIVE_LEVEL.
    let status = unsafe {
        PsCreateSystemThread(
            &raw mut thread_handle,
            0,
            null_mut(),
            null_mut(),
            null_mut(),
            Some(routine),
            sync_res.cast(),
        )
    };
    if !nt_success(status) {
        log_failure!(c"TestDriver: PsCreateSystemThread failed: %08x\n", status);
        return Err(status);
    }

    let mut thread: PVOID = null_mut();
    // SAFETY: reads the kernel's PsThreadType variable (through its import
    // slot), initialised at boot and never written afterwards.
    let thread_type = unsafe { PsThreadType };
    // SAFETY: a kernel handle to a thread PsCreateSystemThread just returned,
    // of that type; `thread` is a live local.
    let status = unsafe {
        ObReferenceObjectByHandle(
            thread_handle,
            SYNCHRONIZE,
            thread_type,
            KERNEL_MODE,
            &raw mut thread,
            null_mut(),
        )
    };
    if !nt_success(status) {
        log_failure!(c"TestDriver: ObReferenceObjectByHandle failed: %08x\n", status);
        thread = null_mut();
        // SAFETY: the handle is open; the I/O manager's driver object.
        unsafe { wait_for_thread(driver_object, thread_handle) };
    }
    // SAFETY: a kernel handle PsCreateSystemThread returned, closed once.
    let _ = unsafe { ZwClose(thread_handle) };
    Ok(thread)
}

/// Waits, through its handle, for a thread [`start_thread`] could not
/// reference, so that the device extension and the driver's code outlive it.
///
/// This cannot deadlock: neither thread waits for `DriverEntry`, as
/// `FileMoveThread` takes the mutex only once `files_created` is set (by
/// `FileCreationThread` after it released the mutex, or by `DriverEntry` if
/// it could not start it). If the wait fails too, the driver clears its
/// `DriverUnload` and is never unloaded.
///
/// # Safety
///
/// `thread_handle` is an open kernel handle `PsCreateSystemThread` returned
/// to `DriverEntry`; `driver_object` is the driver object the I/O manager
/// passed to `DriverEntry`; IRQL `PASSIVE_LEVEL`.
unsafe fn wait_for_thread(driver_object: PDRIVER_OBJECT, thread_handle: HANDLE) {
    // SAFETY: an open handle; PASSIVE_LEVEL, not alertable, no timeout.
    // DriverEntry holds nothing the thread waits for (see above).
    let status =
        unsafe { ZwWaitForSingleObject(thread_handle, BOOLEAN::from(false), null_mut()) };
    // STATUS_SUCCESS (STATUS_WAIT_0) alone says that the thread has ended.
    if status != STATUS_SUCCESS {
        log_failure!(
            c"TestDriver: ZwWaitForSingleObject failed: %08x, the driver stays loaded\n",
            status,
        );
        // SAFETY: the I/O manager's driver object, writable; it calls
        // DriverUnload only after DriverEntry has returned, and not at all
        // when it is NULL.
        unsafe { (*driver_object).DriverUnload = None };
    }
}

/// `DriverEntry`: creates the device holding the `FAST_MUTEX` and the
/// `files_created` event, and starts the two threads.
///
/// # Safety
///
/// Called once by the I/O manager at `PASSIVE_LEVEL` with a valid driver
/// object.
// Host unit tests do not export it: the dev-dependency's wdk-sys test-stubs
// define `DriverEntry`, and an export would pull the kernel routines into the
// test binary.
#[cfg_attr(not(test), unsafe(export_name = "DriverEntry"))]
pub unsafe extern "system" fn driver_entry(
    driver_object: PDRIVER_OBJECT,
    _registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid, writable driver object.
    unsafe { (*driver_object).DriverUnload = Some(unload_driver) };

    let mut device_object: PDEVICE_OBJECT = null_mut();
    #[allow(clippy::cast_possible_truncation, reason = "96 bytes")]
    let extension_size = size_of::<SyncResources>() as ULONG;
    // SAFETY: valid driver object, no device name (an unnamed device), and
    // `device_object` is a live local.
    let status = unsafe {
        IoCreateDevice(
            driver_object,
            extension_size,
            null_mut(),
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &raw mut device_object,
        )
    };

    if !nt_success(status) {
        log_failure!(c"TestDriver: IoCreateDevice failed: %08x\n", status);
        return status;
    }

    // SAFETY: IoCreateDevice succeeded, so `device_object` is valid and its
    // extension is `extension_size` bytes of non-paged memory.
    let sync_res = unsafe { (*device_object).DeviceExtension }.cast::<SyncResources>();
    // SAFETY: the extension is `extension_size` bytes; taking a field's
    // address reads nothing.
    let file_mutex = unsafe { &raw mut (*sync_res).file_mutex };
    // SAFETY: as above.
    let files_created = unsafe { &raw mut (*sync_res).files_created };
    // SAFETY: as above.
    let threads = unsafe { &raw mut (*sync_res).threads };

    // Initialize the FAST_MUTEX
    // SAFETY: the extension is fresh, writable and used by nobody yet.
    unsafe { ex_initialize_fast_mutex(file_mutex) };
    // SAFETY: as above; a notification event, not signalled.
    unsafe {
        KeInitializeEvent(
            files_created,
            NotificationEvent,
            BOOLEAN::from(false),
        );
    };
    // SAFETY: as above.
    unsafe { threads.write([null_mut(); 2]) };

    // SAFETY: the extension is initialised; unload waits for both threads
    // before deleting the device, or start_thread waited for the thread, or
    // the driver is never unloaded; PASSIVE_LEVEL.
    match unsafe { start_thread(driver_object, file_creation_thread, sync_res) } {
        // SAFETY: the extension is live; unload reads `threads` only after
        // DriverEntry has returned.
        Ok(thread) => unsafe { (*threads)[0] = thread },
        // No FileCreationThread will set the event: set it, so that
        // FileMoveThread does not wait forever.
        // SAFETY: the event is initialised; PASSIVE_LEVEL.
        Err(_) => unsafe { signal_files_created(files_created) },
    }

    // SAFETY: as above.
    if let Ok(thread) = unsafe { start_thread(driver_object, file_move_thread, sync_res) } {
        // SAFETY: as above.
        unsafe { (*threads)[1] = thread };
    }

    // DriverEntry succeeds even if a thread could not be started: the other
    // already runs in the driver's code, and unload waits for it (or
    // wait_for_thread did, or the driver is never unloaded).
    STATUS_SUCCESS
}
