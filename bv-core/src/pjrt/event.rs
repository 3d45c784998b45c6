//! `PJRT_Event`: completion of asynchronous work (transfers, executions).

use std::ffi::c_void;

use xla_sys as sys;

use super::api::{args, call, Api};
use super::error::Result;

/// A one-shot completion signal from the plugin. Dropping it does not cancel the work.
pub struct Event {
    raw: *mut sys::PJRT_Event,
    api: &'static Api,
}

// SAFETY: PJRT events may be awaited and destroyed from any thread.
unsafe impl Send for Event {}
unsafe impl Sync for Event {}

type Callback = Box<dyn FnOnce(Result<()>) + Send + 'static>;

impl Event {
    /// Takes ownership of a non-null event returned by a PJRT call.
    pub(crate) fn from_raw(raw: *mut sys::PJRT_Event, api: &'static Api) -> Event {
        Event { raw, api }
    }

    /// Blocks until the event fires; returns the error it carries, if any.
    pub fn wait(&self) -> Result<()> {
        let mut a = args!(PJRT_Event_Await_Args { event: self.raw });
        call!(self.api, PJRT_Event_Await, &mut a)
    }

    /// True once the event has fired (successfully or not); never blocks.
    pub fn is_ready(&self) -> Result<bool> {
        let mut a = args!(PJRT_Event_IsReady_Args { event: self.raw });
        call!(self.api, PJRT_Event_IsReady, &mut a)?;
        Ok(a.is_ready)
    }

    /// Runs `f` with the event's outcome once it fires, on a plugin thread (or right away
    /// if it already has). `f` must not block.
    pub fn on_ready(&self, f: impl FnOnce(Result<()>) + Send + 'static) -> Result<()> {
        let state: Box<(&'static Api, Callback)> = Box::new((self.api, Box::new(f)));
        let user_arg = Box::into_raw(state).cast::<c_void>();
        let mut a = args!(PJRT_Event_OnReady_Args {
            event: self.raw,
            callback: Some(on_ready_trampoline),
            user_arg: user_arg,
        });
        let result = call!(self.api, PJRT_Event_OnReady, &mut a);
        if result.is_err() {
            // SAFETY: the plugin refused the callback, so it will never run; reclaim it.
            drop(unsafe { Box::from_raw(user_arg.cast::<(&'static Api, Callback)>()) });
        }
        result
    }
}

extern "C" fn on_ready_trampoline(err: *mut sys::PJRT_Error, user_arg: *mut c_void) {
    // SAFETY: `user_arg` is the box leaked in `on_ready`, handed back exactly once.
    let state = unsafe { Box::from_raw(user_arg.cast::<(&'static Api, Callback)>()) };
    let (api, f) = *state;
    f(api.check("PJRT_Event_OnReady", err));
}

impl Drop for Event {
    fn drop(&mut self) {
        let mut a = args!(PJRT_Event_Destroy_Args { event: self.raw });
        // Nothing useful can be done with a failure to free.
        let _ = call!(self.api, PJRT_Event_Destroy, &mut a);
    }
}
