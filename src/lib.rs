//! `TestDriver`: a Rust port of a WDM teaching driver whose thread deadlocks on
//! a `FAST_MUTEX` it already holds. The `fixed` feature chooses the driver the
//! image holds: [`seed`] (the default), the seed's C routine by routine, or
//! [`fixed`], the demo without its defects. `src/nt.rs` holds what both share.

#![no_std]
#![allow(
    non_snake_case,
    reason = "the crate is named TestDriver, like the seed's TestDriver.sys"
)]

#[cfg(not(test))]
extern crate wdk_panic;

#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

mod nt;

#[cfg(not(feature = "fixed"))]
pub mod seed;

#[cfg(feature = "fixed")]
pub mod fixed;

#[cfg(test)]
mod layout_tests;
