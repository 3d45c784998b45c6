//! The bucket side of [`super`]: `gs://` and `s3://` objects through `object_store`, driven
//! by a small tokio runtime owned here so the trainer stays blocking code.
//!
//! Credentials come from the providers' standard chains: for S3 the `AWS_*` variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...),
//! web identity and instance metadata; for GCS `GOOGLE_SERVICE_ACCOUNT` (or
//! `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's application default credentials) and the
//! metadata server of a GCE or TPU VM. Emulators: `AWS_ENDPOINT_URL=http://HOST:PORT` (plain
//! HTTP is then allowed), and `STORAGE_EMULATOR_HOST=HOST:PORT` for GCS (no OAuth), the
//! variable Google's own client libraries read.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::Entry;

/// An object (or a prefix of objects) in a bucket.
pub(super) struct Object {
    scheme: String,
    bucket: String,
    key: Key,
    store: Arc<dyn ObjectStore>,
}

/// The runtime every object store call runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bv-storage")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

fn to_io(e: object_store::Error) -> io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The stores built so far, by (scheme, bucket).
type Stores = Mutex<HashMap<(String, String), Arc<dyn ObjectStore>>>;

/// The store of a bucket, built once per process from the environment.
fn store(scheme: &str, bucket: &str) -> io::Result<Arc<dyn ObjectStore>> {
    static STORES: OnceLock<Stores> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let id = (scheme.to_string(), bucket.to_string());
    if let Some(s) = stores.get(&id) {
        return Ok(s.clone());
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let built: Arc<dyn ObjectStore> = if scheme == "s3" {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .into_iter()
            .find_map(env);
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            b = b.with_allow_http(true);
        }
        Arc::new(b.build().map_err(to_io)?)
    } else {
        let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
        if let Some(host) = env("STORAGE_EMULATOR_HOST") {
            let url = if host.contains("://") {
                host
            } else {
                format!("http://{host}")
            };
            let key = serde_json::json!({
                "private_key": "", "private_key_id": "", "client_email": "",
                "disable_oauth": true, "gcs_base_url": url,
            });
            b = b
                .with_service_account_key(key.to_string())
                .with_client_options(
                    object_store::ClientOptions::new().with_allow_http(url.starts_with("http://")),
                );
        }
        Arc::new(b.build().map_err(to_io)?)
    };
    stores.insert(id, built.clone());
    Ok(built)
}

/// The scheme, bucket and key of `gs://BUCKET/KEY` or `s3://BUCKET/KEY`.
pub(super) fn split(path: &Path) -> io::Result<(String, String, Key)> {
    let text = path.to_string_lossy();
    let (scheme, rest) = text.split_once("://").unwrap_or(("", &text));
    if !super::SCHEMES.contains(&scheme) {
        return Err(invalid(format!(
            "{scheme}:// is not supported: give a local path, gs://BUCKET/PATH or s3://BUCKET/PATH"
        )));
    }
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid(format!(
            "no bucket name: expected {scheme}://BUCKET/PATH"
        )));
    }
    let key = Key::parse(key.trim_end_matches('/'))
        .map_err(|e| invalid(format!("not an object name: {e}")))?;
    Ok((scheme.to_string(), bucket.to_string(), key))
}

impl Object {
    /// `gs://BUCKET/KEY` or `s3://BUCKET/KEY`, with the bucket's store.
    pub(super) fn parse(path: &Path) -> io::Result<Object> {
        let (scheme, bucket, key) = split(path)?;
        Ok(Object {
            store: store(&scheme, &bucket)?,
            scheme,
            bucket,
            key,
        })
    }

    fn prefix(&self) -> Option<&Key> {
        (!self.key.as_ref().is_empty()).then_some(&self.key)
    }

    pub(super) fn read(&self) -> io::Result<Vec<u8>> {
        runtime().block_on(async {
            let got = self.store.get(&self.key).await.map_err(to_io)?;
            Ok(got.bytes().await.map_err(to_io)?.to_vec())
        })
    }

    pub(super) fn exists(&self) -> io::Result<bool> {
        match runtime().block_on(self.store.head(&self.key)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(to_io(e)),
        }
    }

    pub(super) fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let payload = PutPayload::from(bytes.to_vec());
        runtime()
            .block_on(self.store.put(&self.key, payload))
            .map(|_| ())
            .map_err(to_io)
    }

    pub(super) fn list(&self) -> io::Result<Vec<Entry>> {
        let listed = runtime()
            .block_on(self.store.list_with_delimiter(self.prefix()))
            .map_err(to_io)?;
        let name = |k: &Key| k.filename().unwrap_or_default().to_string();
        let dirs = listed.common_prefixes.iter().map(|p| Entry {
            name: name(p),
            is_dir: true,
        });
        let files = listed.objects.iter().map(|o| Entry {
            name: name(&o.location),
            is_dir: false,
        });
        Ok(dirs.chain(files).collect())
    }

    /// Every object under this prefix, with its size.
    fn all(&self) -> io::Result<Vec<(Key, u64)>> {
        runtime().block_on(async {
            let listed: Vec<_> = self
                .store
                .list(self.prefix())
                .try_collect()
                .await
                .map_err(to_io)?;
            Ok(listed.into_iter().map(|m| (m.location, m.size)).collect())
        })
    }

    pub(super) fn remove_all(&self) -> io::Result<()> {
        for (key, _) in self.all()? {
            match runtime().block_on(self.store.delete(&key)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(to_io(e)),
            }
        }
        Ok(())
    }

    /// Where the local copy of `key` goes in the bv cache.
    fn cache_path(&self, key: &Key) -> PathBuf {
        let mut p = bv_core::pjrt::provision::cache_dir()
            .join("remote")
            .join(&self.scheme)
            .join(&self.bucket);
        for part in key.parts() {
            p.push(part.as_ref());
        }
        p
    }

    /// Copies `key` of `size` bytes to `local` unless a file of that size is there.
    fn fetch(&self, key: &Key, size: u64, local: &Path) -> io::Result<()> {
        if std::fs::metadata(local).is_ok_and(|m| m.is_file() && m.len() == size) {
            return Ok(());
        }
        let bytes = Object {
            scheme: self.scheme.clone(),
            bucket: self.bucket.clone(),
            key: key.clone(),
            store: self.store.clone(),
        }
        .read()?;
        if let Some(dir) = local.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = local.with_extension(format!("{}.part", std::process::id()));
        super::local::write_via(&tmp, local, &bytes)
    }

    pub(super) fn download(&self) -> io::Result<PathBuf> {
        let meta = runtime()
            .block_on(self.store.head(&self.key))
            .map_err(to_io)?;
        let local = self.cache_path(&self.key);
        self.fetch(&self.key, meta.size, &local)?;
        Ok(local)
    }

    pub(super) fn download_all(&self) -> io::Result<PathBuf> {
        let root = self.cache_path(&self.key);
        for (key, size) in self.all()? {
            self.fetch(&key, size, &self.cache_path(&key))?;
        }
        std::fs::create_dir_all(&root)?;
        Ok(root)
    }
}
