//! `TestDriver`: a Rust port of a WDM teaching driver that shows a thread
//! deadlocking on a `FAST_MUTEX` it already holds.
//!
//! `DriverEntry` creates an unnamed device whose extension holds a `FAST_MUTEX`,
//! then starts two system threads. `FileCreationThread` acquires the mutex
//! twice: fast mutexes cannot be acquired recursively, so it waits forever for
//! itself. `FileMoveThread` then waits forever behind it. Nothing is ever
//! written to `C:\Temp`.
//!
//! The crate holds two drivers, and the `fixed` feature chooses which one's
//! `DriverEntry` the image exports:
//! - [`seed`], the default: the seed's C, routine by routine;
//! - [`fixed`]: the same demo without the seed's defects.
//!
//! `diff src/seed.rs src/fixed.rs` lists the fixes. The header inlines both
//! use, and the seed's paths, counts and bytes, are written once in `src/nt.rs`.

#![no_std]
#![allow(
    non_snake_case,
    reason = "the crate is named TestDriver, like the seed's TestDriver.sys"
)]

#[cfg(not(test))]
extern crate wdk_panic;

#[cfg(not(test))]
use wdk_alloc::WdkAllocator;

#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;

mod nt;

#[cfg(not(feature = "fixed"))]
pub mod seed;

#[cfg(feature = "fixed")]
pub mod fixed;

#[cfg(test)]
mod layout_tests;
