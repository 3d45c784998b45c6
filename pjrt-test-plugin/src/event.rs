//! `PJRT_Event`: everything here completes before the call returns, so an event is born
//! ready, carrying an error or not.

use std::ffi::c_void;

use xla_sys as sys;

use crate::error::{Error, Result};

pub(crate) struct Event {
    error: Option<Error>,
}

/// A ready event.
pub(crate) fn ready(error: Option<Error>) -> *mut sys::PJRT_Event {
    Box::into_raw(Box::new(Event { error })).cast()
}

/// # Safety
/// `raw` must be a live event made by [`ready`].
unsafe fn get<'a>(raw: *mut sys::PJRT_Event) -> &'a Event {
    &*raw.cast::<Event>()
}

crate::entry!(destroy(PJRT_Event_Destroy_Args) a => {
    // SAFETY: the caller hands back a live event, once.
    drop(unsafe { Box::from_raw(a.event.cast::<Event>()) });
    Ok(())
});

crate::entry!(is_ready(PJRT_Event_IsReady_Args) a => {
    a.is_ready = true;
    Ok(())
});

crate::entry!(wait(PJRT_Event_Await_Args) a => outcome(a.event));

crate::entry!(error(PJRT_Event_Error_Args) a => outcome(a.event));

crate::entry!(on_ready(PJRT_Event_OnReady_Args) a => {
    let callback = a.callback.ok_or_else(|| Error::invalid("PJRT_Event_OnReady: no callback"))?;
    let err = match outcome(a.event) {
        Ok(()) => std::ptr::null_mut(),
        Err(e) => e.into_raw(),
    };
    // SAFETY: the callback takes the error (if any) and its own user argument.
    unsafe { callback(err, a.user_arg.cast::<c_void>()) };
    Ok(())
});

fn outcome(raw: *mut sys::PJRT_Event) -> Result<()> {
    // SAFETY: the caller passes a live event.
    match unsafe { &get(raw).error } {
        Some(e) => Err(e.clone()),
        None => Ok(()),
    }
}
