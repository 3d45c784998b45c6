//! `PJRT_Error`: a code and a message, boxed and handed to the caller, who destroys it.

use std::ffi::c_char;

use xla_sys as sys;

/// An error returned by an entry point.
#[derive(Clone, Debug)]
pub(crate) struct Error {
    pub(crate) code: sys::PJRT_Error_Code,
    pub(crate) message: String,
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn new(code: sys::PJRT_Error_Code, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(sys::PJRT_Error_Code_INVALID_ARGUMENT, message)
    }

    pub(crate) fn unimplemented(message: impl Into<String>) -> Error {
        Error::new(sys::PJRT_Error_Code_UNIMPLEMENTED, message)
    }

    /// Hands the error to the caller.
    pub(crate) fn into_raw(self) -> *mut sys::PJRT_Error {
        Box::into_raw(Box::new(self)).cast()
    }

    /// Takes back an error made by [`Error::into_raw`] (or by [`callback_error`]).
    ///
    /// # Safety
    /// `raw` must come from `into_raw` and not have been taken back before.
    pub(crate) unsafe fn from_raw(raw: *mut sys::PJRT_Error) -> Error {
        *Box::from_raw(raw.cast::<Error>())
    }
}

/// The error constructor handed to key-value callbacks.
pub(crate) unsafe extern "C" fn callback_error(
    code: sys::PJRT_Error_Code,
    message: *const c_char,
    size: usize,
) -> *mut sys::PJRT_Error {
    Error::new(code, crate::string(message, size)).into_raw()
}

pub(crate) unsafe extern "C" fn destroy(a: *mut sys::PJRT_Error_Destroy_Args) {
    drop(Error::from_raw((*a).error));
}

pub(crate) unsafe extern "C" fn message(a: *mut sys::PJRT_Error_Message_Args) {
    let e = &*(*a).error.cast::<Error>();
    (*a).message = e.message.as_ptr().cast();
    (*a).message_size = e.message.len();
}

pub(crate) unsafe extern "C" fn get_code(
    a: *mut sys::PJRT_Error_GetCode_Args,
) -> *mut sys::PJRT_Error {
    (*a).code = (*(*a).error.cast::<Error>()).code;
    std::ptr::null_mut()
}
