//! The process-wide PJRT client (JAX's default backend) that `jit`, eager ops and array
//! creation use. It sits below them all, so none of them imports another for it.

use std::sync::Mutex;

use crate::pjrt::{self, Client};

static DEFAULT_CLIENT: Mutex<Option<Client>> = Mutex::new(None);

/// The process-wide client `jit` and `Array::from_slice` use (JAX's default backend): set by
/// [`set_default_client`], else [`Client::from_env`] on first use (a one-device CPU client
/// unless `BV_PLATFORM` names another platform).
pub fn default_client() -> Result<Client, pjrt::Error> {
    let mut slot = DEFAULT_CLIENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = &*slot {
        return Ok(c.clone());
    }
    let c = Client::from_env()?;
    *slot = Some(c.clone());
    Ok(c)
}

/// Makes `client` the default for later `jit` calls and array creation.
pub fn set_default_client(client: Client) {
    *DEFAULT_CLIENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(client);
}
