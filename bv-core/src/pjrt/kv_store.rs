//! The key-value store a multi-process client shares between processes, bridged to the
//! C callbacks of `PJRT_Client_Create`.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use xla_sys as sys;

/// A store shared by all processes of a job (process 0 usually serves it). PJRT plugins
/// use it to exchange topology and collective ids when a client is created.
pub trait KeyValueStore: Send + Sync {
    /// Waits up to `timeout` for `key` to be set, and returns its value.
    fn get(&self, key: &str, timeout: Duration) -> Result<Vec<u8>, String>;
    /// Returns the value of `key` if it is set, without waiting.
    fn try_get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Sets `key` to `value`.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), String>;
}

/// The store as the client keeps it: the callbacks' user argument is the address of the
/// boxed `Arc`, which stays put when the handle moves into the client.
pub(crate) type KvHandle = Box<Arc<dyn KeyValueStore>>;

/// Fills the key-value fields of a client-create argument struct. A plugin may call the
/// callbacks for as long as the client lives (multi-node GPU clients do, to exchange
/// collective ids), so `store` must live as long as the client.
pub(crate) fn install(args: &mut sys::PJRT_Client_Create_Args, store: &KvHandle) {
    let user = user_arg(store);
    args.kv_get_callback = Some(kv_get);
    args.kv_get_user_arg = user;
    args.kv_put_callback = Some(kv_put);
    args.kv_put_user_arg = user;
    args.kv_try_get_callback = Some(kv_try_get);
    args.kv_try_get_user_arg = user;
}

/// The user argument of the callbacks: the heap address of the store, not the address of
/// the handle (a stack slot that moves).
fn user_arg(store: &KvHandle) -> *mut c_void {
    let heap: &Arc<dyn KeyValueStore> = store;
    (heap as *const Arc<dyn KeyValueStore>)
        .cast_mut()
        .cast::<c_void>()
}

/// Allocates a value the plugin frees through [`free_value`]: the length is stored in the
/// eight bytes before the returned pointer.
fn alloc_value(value: &[u8]) -> *mut c_char {
    let mut buf = Vec::with_capacity(8 + value.len());
    buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    buf.extend_from_slice(value);
    let boxed = buf.into_boxed_slice();
    // SAFETY: the box holds at least the 8 header bytes.
    unsafe { Box::into_raw(boxed).cast::<c_char>().add(8) }
}

extern "C" fn free_value(value: *mut c_char) {
    if value.is_null() {
        return;
    }
    // SAFETY: `value` came from `alloc_value`, which put the length 8 bytes before it.
    unsafe {
        let start = value.sub(8).cast::<u8>();
        let len = u64::from_le_bytes(std::slice::from_raw_parts(start, 8).try_into().unwrap());
        let slice = std::ptr::slice_from_raw_parts_mut(start, 8 + len as usize);
        drop(Box::from_raw(slice));
    }
}

/// Reads the store and key of a callback.
///
/// # Safety
/// `user` must come from [`user_arg`] of a live handle; `key` must point at `len` bytes.
unsafe fn store_and_key<'a>(
    user: *mut c_void,
    key: *const c_char,
    len: usize,
) -> (&'a Arc<dyn KeyValueStore>, String) {
    let store = &*user.cast::<Arc<dyn KeyValueStore>>();
    let key = super::api::string_from(key, len);
    (store, key)
}

/// Reports a callback failure through the plugin's error constructor.
///
/// # Safety
/// `make` must be the `callback_error` the plugin passed in.
unsafe fn fail(
    make: *mut sys::PJRT_CallbackError,
    code: sys::PJRT_Error_Code,
    msg: &str,
) -> *mut sys::PJRT_Error {
    match make.as_ref().and_then(|f| *f) {
        Some(f) => f(code, msg.as_ptr().cast::<c_char>(), msg.len()),
        None => std::ptr::null_mut(),
    }
}

extern "C" fn kv_get(args: *mut sys::PJRT_KeyValueGetCallback_Args) -> *mut sys::PJRT_Error {
    // SAFETY: the plugin passes a valid argument struct and our own user argument.
    unsafe {
        let a = &mut *args;
        let (store, key) = store_and_key(a.user_arg, a.key, a.key_size);
        let timeout = Duration::from_millis(a.timeout_in_ms.max(0) as u64);
        match store.get(&key, timeout) {
            Ok(v) => {
                a.value_size = v.len();
                a.value = alloc_value(&v);
                a.value_deleter_callback = Some(free_value);
                std::ptr::null_mut()
            }
            Err(e) => fail(a.callback_error, sys::PJRT_Error_Code_DEADLINE_EXCEEDED, &e),
        }
    }
}

extern "C" fn kv_try_get(args: *mut sys::PJRT_KeyValueTryGetCallback_Args) -> *mut sys::PJRT_Error {
    // SAFETY: as in `kv_get`.
    unsafe {
        let a = &mut *args;
        let (store, key) = store_and_key(a.user_arg, a.key, a.key_size);
        match store.try_get(&key) {
            Ok(Some(v)) => {
                a.value_size = v.len();
                a.value = alloc_value(&v);
                a.value_deleter_callback = Some(free_value);
                std::ptr::null_mut()
            }
            Ok(None) => fail(
                a.callback_error,
                sys::PJRT_Error_Code_NOT_FOUND,
                &format!("key {key} not found"),
            ),
            Err(e) => fail(a.callback_error, sys::PJRT_Error_Code_UNAVAILABLE, &e),
        }
    }
}

extern "C" fn kv_put(args: *mut sys::PJRT_KeyValuePutCallback_Args) -> *mut sys::PJRT_Error {
    // SAFETY: as in `kv_get`; `value` points at `value_size` bytes for this call.
    unsafe {
        let a = &mut *args;
        let (store, key) = store_and_key(a.user_arg, a.key, a.key_size);
        let value: &[u8] = if a.value.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(a.value.cast::<u8>(), a.value_size)
        };
        match store.put(&key, value) {
            Ok(()) => std::ptr::null_mut(),
            Err(e) => fail(a.callback_error, sys::PJRT_Error_Code_UNAVAILABLE, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MapStore(Mutex<HashMap<String, Vec<u8>>>);

    impl KeyValueStore for MapStore {
        fn get(&self, key: &str, _: Duration) -> Result<Vec<u8>, String> {
            self.try_get(key)?.ok_or_else(|| format!("no {key}"))
        }
        fn try_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        fn put(&self, key: &str, value: &[u8]) -> Result<(), String> {
            self.0.lock().unwrap().insert(key.into(), value.to_vec());
            Ok(())
        }
    }

    /// The callbacks keep working after the handle they were installed from has moved (the
    /// client keeps it elsewhere): the slot it left holds `None`, a null pointer, which a
    /// user argument pointing at the slot would dereference.
    #[test]
    fn callbacks_survive_the_handle_moving() {
        let store = Arc::new(MapStore::default());
        let mut slot: Option<KvHandle> = Some(Box::new(store.clone()));
        // SAFETY: plain C data; all-zero is valid.
        let mut create: sys::PJRT_Client_Create_Args = unsafe { std::mem::zeroed() };
        install(&mut create, slot.as_ref().unwrap());
        let kept = slot.take();
        assert!(slot.is_none());

        let (key, value) = (b"topology/0", b"4 devices");
        // SAFETY: as above.
        let mut put: sys::PJRT_KeyValuePutCallback_Args = unsafe { std::mem::zeroed() };
        put.key = key.as_ptr().cast();
        put.key_size = key.len();
        put.value = value.as_ptr().cast();
        put.value_size = value.len();
        put.user_arg = create.kv_put_user_arg;
        // SAFETY: the callback gets a valid argument struct with the installed user argument.
        let err = unsafe { create.kv_put_callback.unwrap()(&mut put) };
        assert!(err.is_null());
        assert_eq!(store.try_get("topology/0").unwrap().unwrap(), value);

        // SAFETY: as above.
        let mut get: sys::PJRT_KeyValueGetCallback_Args = unsafe { std::mem::zeroed() };
        get.key = key.as_ptr().cast();
        get.key_size = key.len();
        get.user_arg = create.kv_get_user_arg;
        // SAFETY: as above; the value is freed through its deleter.
        unsafe {
            assert!(create.kv_get_callback.unwrap()(&mut get).is_null());
            let got = std::slice::from_raw_parts(get.value.cast::<u8>(), get.value_size).to_vec();
            get.value_deleter_callback.unwrap()(get.value);
            assert_eq!(got, value);
        }
        drop(kept);
    }

    #[test]
    fn values_round_trip_through_the_c_allocation() {
        for v in [&b""[..], b"x", b"hello world"] {
            let p = alloc_value(v);
            // SAFETY: p points at v.len() bytes just written.
            let back = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), v.len()) }.to_vec();
            free_value(p);
            assert_eq!(back, v);
        }
    }
}
