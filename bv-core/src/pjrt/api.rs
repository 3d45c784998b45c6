//! The plugin's function table, with a `struct_size` guard before every call.

use std::ffi::c_char;
use std::path::PathBuf;

use xla_sys as sys;

use super::error::{Error, ErrorCode, Result};

/// A loaded plugin's `PJRT_Api` table. The table may be shorter than the header's
/// `PJRT_Api` (an older plugin), so entries are read through [`call!`] only after checking
/// the table's own `struct_size`.
pub(crate) struct Api {
    raw: *const sys::PJRT_Api,
    pub(crate) path: PathBuf,
    pub(crate) version: (i32, i32),
}

// SAFETY: the table is immutable for the life of the process and PJRT entry points are
// thread-safe by contract.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

/// Makes a PJRT argument struct: every field zeroed, `struct_size` from the header, then
/// the given fields set.
macro_rules! args {
    ($ty:ident { $($field:ident : $value:expr),* $(,)? }) => {{
        paste::paste! {
            // SAFETY: PJRT argument structs are plain C data for which all-zero is valid.
            let mut a: xla_sys::$ty = unsafe { std::mem::zeroed() };
            a.struct_size = xla_sys::[<$ty _STRUCT_SIZE>] as usize;
            $(a.$field = $value;)*
            a
        }
    }};
}
pub(crate) use args;

/// Calls the PJRT entry `$entry` with `&mut args`, after checking that the plugin's table
/// is long enough to hold it; evaluates to `Result<()>`.
macro_rules! call {
    ($api:expr, $entry:ident, $args:expr) => {{
        let api: &$crate::pjrt::api::Api = $api;
        let offset = std::mem::offset_of!(xla_sys::PJRT_Api, $entry);
        // SAFETY: `entry` reads the field only when the table's struct_size covers it.
        match unsafe { api.entry(stringify!($entry), offset, |t| (*t).$entry) } {
            // SAFETY: the argument struct was built by `args!` for this entry.
            Ok(f) => api.check(stringify!($entry), unsafe { f($args) }),
            Err(e) => Err(e),
        }
    }};
}
pub(crate) use call;

impl Api {
    /// Wraps the table returned by `GetPjrtApi`.
    ///
    /// # Safety
    /// `raw` must point at a `PJRT_Api` that lives for the rest of the process.
    pub(crate) unsafe fn new(raw: *const sys::PJRT_Api, path: PathBuf) -> Api {
        let v = std::ptr::addr_of!((*raw).pjrt_api_version).read();
        Api {
            raw,
            path,
            version: (v.major_version, v.minor_version),
        }
    }

    /// The number of bytes of the plugin's `PJRT_Api` table.
    pub(crate) fn table_size(&self) -> usize {
        // SAFETY: struct_size is the first field of every PJRT_Api.
        unsafe { std::ptr::addr_of!((*self.raw).struct_size).read() }
    }

    /// Reads one function pointer, after checking the table holds it.
    ///
    /// # Safety
    /// `offset` must be the offset of the field that `read` reads.
    pub(crate) unsafe fn entry<F>(
        &self,
        name: &'static str,
        offset: usize,
        read: impl FnOnce(*const sys::PJRT_Api) -> Option<F>,
    ) -> Result<F> {
        if offset + std::mem::size_of::<usize>() > self.table_size() {
            return Err(self.unsupported(name));
        }
        read(self.raw).ok_or_else(|| self.unsupported(name))
    }

    /// The error for an entry point this plugin lacks.
    pub(crate) fn unsupported(&self, entry: &'static str) -> Error {
        Error::Unsupported {
            entry,
            path: self.path.clone(),
            major: self.version.0,
            minor: self.version.1,
        }
    }

    /// Turns a returned `PJRT_Error*` into a `Result`, freeing the error.
    pub(crate) fn check(&self, call: &'static str, err: *mut sys::PJRT_Error) -> Result<()> {
        if err.is_null() {
            return Ok(());
        }
        Err(self.take_error(call, err))
    }

    /// Reads and frees a non-null `PJRT_Error*`.
    pub(crate) fn take_error(&self, call: &'static str, err: *mut sys::PJRT_Error) -> Error {
        let mut msg = args!(PJRT_Error_Message_Args { error: err });
        let mut code = args!(PJRT_Error_GetCode_Args { error: err });
        let mut destroy = args!(PJRT_Error_Destroy_Args { error: err });
        // SAFETY: these three entries exist in every PJRT API version (they precede all
        // others in the table) and `err` is a live error owned by us.
        unsafe {
            if let Some(f) = (*self.raw).PJRT_Error_Message {
                f(&mut msg);
            }
            let message = if msg.message.is_null() {
                String::from("(no message)")
            } else {
                string_from(msg.message, msg.message_size)
            };
            let code = match (*self.raw).PJRT_Error_GetCode {
                Some(f) if f(&mut code).is_null() => ErrorCode(code.code),
                _ => ErrorCode(2),
            };
            if let Some(f) = (*self.raw).PJRT_Error_Destroy {
                f(&mut destroy);
            }
            Error::Plugin {
                call,
                code,
                message,
            }
        }
    }
}

/// Copies a (pointer, length) string owned by the plugin.
///
/// # Safety
/// `ptr` must point at `len` readable bytes (or be null with any `len`).
pub(crate) unsafe fn string_from(ptr: *const c_char, len: usize) -> String {
    String::from_utf8_lossy(slice_from(ptr.cast::<u8>(), len)).into_owned()
}

/// A plugin-owned (pointer, length) list as a slice; a null pointer or a zero length (which
/// plugins return for empty lists, and `from_raw_parts` does not accept) is empty.
///
/// # Safety
/// Unless null or `len` is 0, `ptr` must point at `len` initialised values that stay valid
/// and unchanged for `'a`.
pub(crate) unsafe fn slice_from<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_or_empty_plugin_lists_are_empty_slices() {
        // SAFETY: null and zero-length inputs are the cases under test.
        unsafe {
            assert!(slice_from::<u64>(std::ptr::null(), 3).is_empty());
            assert!(slice_from(std::ptr::NonNull::<u64>::dangling().as_ptr(), 0).is_empty());
            assert_eq!(string_from(std::ptr::null(), 5), "");
        }
        let v = [1u32, 2, 3];
        // SAFETY: `v` holds 3 values and outlives the slice.
        assert_eq!(unsafe { slice_from(v.as_ptr(), 3) }, &v);
        let s = b"ab\xffc";
        // SAFETY: `s` holds 4 bytes.
        assert_eq!(unsafe { string_from(s.as_ptr().cast(), 4) }, "ab\u{fffd}c");
    }
}
