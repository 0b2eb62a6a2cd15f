//! Holds the wdk-sys declarations this driver touches to Microsoft's own
//! definitions in `windows-sys` (generated from the WDK's metadata): the size,
//! alignment and field offsets of every structure, and the value of every
//! constant. On Linux this checks the bindings generated from mingw-w64's
//! headers; on Windows, the real wdk-sys.

extern crate std;

use core::mem::{align_of, offset_of, size_of};

use windows_sys::{
    Wdk::{
        Foundation as wdk_foundation,
        Storage::FileSystem as wdk_fs,
        System::SystemServices as wdk_services,
    },
    Win32::{
        Foundation as win_foundation,
        Storage::FileSystem as win_fs,
        System::{IO as win_io, Ioctl as win_ioctl, Kernel as win_kernel},
    },
};

/// Asserts that two structures have the same size and alignment and that each
/// named field is at the same offset (`ours.field => theirs.field`).
macro_rules! same_layout {
    ($ours:ty, $theirs:ty $(, $field:ident => $their_field:ident)* $(,)?) => {{
        assert_eq!(size_of::<$ours>(), size_of::<$theirs>(), "size of {}", stringify!($ours));
        assert_eq!(align_of::<$ours>(), align_of::<$theirs>(), "alignment of {}", stringify!($ours));
        $(
            assert_eq!(
                offset_of!($ours, $field),
                offset_of!($theirs, $their_field),
                "offset of {}.{}", stringify!($ours), stringify!($field)
            );
        )*
    }};
}

#[test]
fn fast_mutex_matches_the_wdk() {
    same_layout!(wdk_sys::FAST_MUTEX, wdk_foundation::FAST_MUTEX,
        Count => Count, Owner => Owner, Contention => Contention, Event => Event, OldIrql => OldIrql);
    // The offsets the seed's `dt nt!_FAST_MUTEX` shows.
    assert_eq!(offset_of!(wdk_sys::FAST_MUTEX, Owner), 0x8);
    assert_eq!(offset_of!(wdk_sys::FAST_MUTEX, Contention), 0x10);
    assert_eq!(offset_of!(wdk_sys::FAST_MUTEX, Event), 0x18);
    assert_eq!(offset_of!(wdk_sys::FAST_MUTEX, OldIrql), 0x30);
    same_layout!(wdk_sys::KEVENT, wdk_foundation::KEVENT, Header => Header);
}

/// The seed's `SYNC_RESOURCES` is just the `FAST_MUTEX`: the mutex the seed's
/// `dt nt!_FAST_MUTEX` reads is the device extension itself.
#[cfg(not(feature = "fixed"))]
#[test]
fn seed_extension_is_the_fast_mutex() {
    assert_eq!(offset_of!(crate::seed::SyncResources, file_mutex), 0);
    same_layout!(crate::seed::SyncResources, wdk_foundation::FAST_MUTEX);
}

/// The fixed driver's extension starts with the same `FAST_MUTEX`, then the
/// `files_created` event and the two thread references.
#[cfg(feature = "fixed")]
#[test]
fn fixed_extension_keeps_the_fast_mutex_first() {
    use crate::fixed::SyncResources;
    assert_eq!(offset_of!(SyncResources, file_mutex), 0);
    assert_eq!(offset_of!(SyncResources, files_created), size_of::<wdk_foundation::FAST_MUTEX>());
    assert_eq!(offset_of!(SyncResources, files_created) % align_of::<wdk_foundation::KEVENT>(), 0);
    assert_eq!(
        offset_of!(SyncResources, threads),
        offset_of!(SyncResources, files_created) + size_of::<wdk_foundation::KEVENT>()
    );
    assert_eq!(size_of::<SyncResources>(), 0x38 + 0x18 + 2 * 8);
}

#[test]
fn file_rename_information_has_the_wdk_shape() {
    same_layout!(wdk_sys::FILE_RENAME_INFORMATION, wdk_fs::FILE_RENAME_INFORMATION,
        __bindgen_anon_1 => Anonymous, RootDirectory => RootDirectory,
        FileNameLength => FileNameLength, FileName => FileName);
    // The union of ReplaceIfExists and Flags.
    assert_eq!(
        size_of::<wdk_sys::_FILE_RENAME_INFORMATION__bindgen_ty_1>(),
        size_of::<wdk_fs::FILE_RENAME_INFORMATION_0>()
    );
}

#[test]
fn io_structures_match_the_wdk() {
    same_layout!(wdk_sys::OBJECT_ATTRIBUTES, wdk_foundation::OBJECT_ATTRIBUTES,
        Length => Length, RootDirectory => RootDirectory, ObjectName => ObjectName,
        Attributes => Attributes, SecurityDescriptor => SecurityDescriptor,
        SecurityQualityOfService => SecurityQualityOfService);
    same_layout!(wdk_sys::UNICODE_STRING, win_foundation::UNICODE_STRING,
        Length => Length, MaximumLength => MaximumLength, Buffer => Buffer);
    same_layout!(wdk_sys::IO_STATUS_BLOCK, win_io::IO_STATUS_BLOCK,
        __bindgen_anon_1 => Anonymous, Information => Information);
}

#[test]
fn driver_and_device_objects_match_the_wdk() {
    same_layout!(wdk_sys::DRIVER_OBJECT, wdk_foundation::DRIVER_OBJECT,
        DeviceObject => DeviceObject, DriverUnload => DriverUnload);
    same_layout!(wdk_sys::DEVICE_OBJECT, wdk_foundation::DEVICE_OBJECT,
        DriverObject => DriverObject, DeviceExtension => DeviceExtension);
}

#[test]
fn constants_match_the_wdk() {
    use wdk_sys::_FILE_INFORMATION_CLASS::FileRenameInformation;
    use wdk_sys::_EVENT_TYPE::SynchronizationEvent;

    assert_eq!(FileRenameInformation, wdk_fs::FileRenameInformation);
    assert_eq!(SynchronizationEvent, win_kernel::SynchronizationEvent);
    assert_eq!(wdk_sys::_EVENT_TYPE::NotificationEvent, win_kernel::NotificationEvent);
    assert_eq!(wdk_sys::IO_NO_INCREMENT, 0, "wdm.h: #define IO_NO_INCREMENT 0");
    // Not in windows-sys: the values of dpfilter.h, which Microsoft's "Reading
    // and Filtering Debugging Messages" page lists (IHV drivers: component
    // 77; DPFLTR_ERROR_LEVEL 0 is shown whatever the filter mask).
    assert_eq!(wdk_sys::_DPFLTR_TYPE::DPFLTR_IHVDRIVER_ID, 77);
    assert_eq!(wdk_sys::DPFLTR_ERROR_LEVEL, 0);
    assert_eq!(wdk_sys::FM_LOCK_BIT, wdk_services::FM_LOCK_BIT);
    assert_eq!(wdk_sys::FILE_DEVICE_UNKNOWN, win_ioctl::FILE_DEVICE_UNKNOWN);
    assert_eq!(wdk_sys::FILE_DEVICE_SECURE_OPEN, wdk_services::FILE_DEVICE_SECURE_OPEN);
    assert_eq!(wdk_sys::GENERIC_WRITE, win_foundation::GENERIC_WRITE);
    assert_eq!(wdk_sys::FILE_ALL_ACCESS, win_fs::FILE_ALL_ACCESS);
    assert_eq!(wdk_sys::SYNCHRONIZE, win_fs::SYNCHRONIZE);
    assert_eq!(wdk_sys::FILE_SHARE_READ, win_fs::FILE_SHARE_READ);
    assert_eq!(wdk_sys::FILE_SHARE_WRITE, win_fs::FILE_SHARE_WRITE);
    assert_eq!(wdk_sys::FILE_ATTRIBUTE_NORMAL, win_fs::FILE_ATTRIBUTE_NORMAL);
    assert_eq!(wdk_sys::FILE_OVERWRITE_IF, wdk_fs::FILE_OVERWRITE_IF);
    assert_eq!(wdk_sys::FILE_SYNCHRONOUS_IO_NONALERT, wdk_fs::FILE_SYNCHRONOUS_IO_NONALERT);
    assert_eq!(wdk_sys::OBJ_CASE_INSENSITIVE, win_foundation::OBJ_CASE_INSENSITIVE as u32);
    assert_eq!(wdk_sys::OBJ_KERNEL_HANDLE, win_foundation::OBJ_KERNEL_HANDLE as u32);
    assert_eq!(wdk_sys::STATUS_SUCCESS, win_foundation::STATUS_SUCCESS);
    assert_eq!(wdk_sys::STATUS_BUFFER_OVERFLOW, win_foundation::STATUS_BUFFER_OVERFLOW);
    assert_eq!(wdk_sys::STATUS_INVALID_PARAMETER, win_foundation::STATUS_INVALID_PARAMETER);
}
