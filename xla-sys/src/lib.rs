//! Raw bindings of the PJRT C API header (`xla/pjrt/c/pjrt_c_api.h`).
//!
//! `bindings.rs` is bindgen output, committed so that building needs no libclang;
//! `scripts/regen.sh` regenerates it and `HEADER.md` records the header it came from.
//! Enumerations are plain integer constants, because a plugin may return values newer
//! than this header knows. The safe layer lives in `bv-core::pjrt`.
#![no_std]
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    clippy::all
)]

include!("bindings.rs");

/// The PJRT API version of the header these bindings were generated from.
pub const HEADER_API_VERSION: (u32, u32) = (PJRT_API_MAJOR, PJRT_API_MINOR);
