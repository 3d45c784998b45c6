//! Checkpoints in big_vision's workdir layout, safe against a kill at any moment.
//!
//! ```text
//! workdir/checkpoint.bv-000001000-tmp/   rotated (deleted once a newer one is LAST)
//! workdir/checkpoint.bv-000002000/       kept (keep_ckpt_steps, the final step)
//!     manifest.json                      step, dtype and shape of each leaf, extra state
//!     params~Transformer~...~kernel.zst  one zstd file per leaf, `/` written as `~`
//! workdir/checkpoint.bv-LAST             "000002000": the checkpoint to resume from
//! ```
//!
//! A checkpoint is assembled in `checkpoint.bv-<step>.writing/`, each file written under a
//! temporary name, fsynced and renamed; the folder is then renamed into place and only
//! after that does `checkpoint.bv-LAST` (written as `checkpoint.bv-CUR`, renamed) point at
//! it. Until that last rename the previous checkpoint stays LAST and whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use bv_core::io::HostArray;
use bv_core::DType;
use serde::{Deserialize, Serialize};

/// The checkpoint prefix inside the workdir (`save_ckpt_path` in train.py).
const PREFIX: &str = "checkpoint.bv-";
const LAST: &str = "checkpoint.bv-LAST";
const CUR: &str = "checkpoint.bv-CUR";
const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "bv-checkpoint-1";
const STAGING: &str = ".writing";

/// What a checkpoint holds: the step, named host arrays (`params/...`, `opt/...`), and
/// extra state such as the data pipeline position and the timing accumulators.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub step: u64,
    pub leaves: Vec<(String, HostArray)>,
    pub extra: serde_json::Value,
}

/// A checkpoint that cannot be written or read; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused (missing folder, permissions, disk full).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file of the checkpoint is damaged or does not match its manifest; delete the
    /// checkpoint folder and point `checkpoint.bv-LAST` at an older one, or start afresh.
    #[error("{}: {msg}", path.display())]
    Corrupt { path: PathBuf, msg: String },
    /// A leaf name cannot become a file name (`~` is reserved for `/`, as in big_vision).
    #[error("leaf name {0:?} cannot be stored: it is empty or contains '~', '\\\\' or a NUL")]
    LeafName(String),
    /// Two leaves have the same name.
    #[error("duplicate leaf {0:?}")]
    DuplicateLeaf(String),
    /// The step to write is the one LAST points at; a run never saves a step twice.
    #[error("{}: the current checkpoint (LAST) is already step {step}", path.display())]
    Exists { path: PathBuf, step: u64 },
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    step: u64,
    leaves: Vec<LeafEntry>,
    extra: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct LeafEntry {
    name: String,
    file: String,
    dtype: String,
    shape: Vec<usize>,
    nbytes: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, msg: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The folder name of the checkpoint of `step` (`checkpoint.bv-000000100[-tmp]`).
pub fn dir_name(step: u64, keep: bool) -> String {
    format!("{PREFIX}{step:09}{}", if keep { "" } else { "-tmp" })
}

/// Writes `bytes` to `path` through a temporary name, fsynced, then renamed.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let tmp = path.with_extension("part");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}

fn leaf_file(name: &str) -> Result<String, CheckpointError> {
    if name.is_empty() || name.contains(['~', '\\', '\0']) || name.split('/').any(|p| p == "..") {
        return Err(CheckpointError::LeafName(name.to_string()));
    }
    Ok(format!("{}.zst", name.replace('/', "~")))
}

/// The content of `checkpoint.bv-LAST` (`000001000` or `000001000-tmp`), if any.
fn read_pointer(workdir: &Path) -> Result<Option<String>, CheckpointError> {
    let path = workdir.join(LAST);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let s = s.trim().to_string();
            let digits = s.strip_suffix("-tmp").unwrap_or(&s);
            if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(corrupt(
                    &path,
                    format!("expected a step like 000001000[-tmp], found {s:?}"),
                ));
            }
            Ok(Some(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// The folder `checkpoint.bv-LAST` points at, if the workdir has one.
pub fn last_dir(workdir: impl AsRef<Path>) -> Result<Option<PathBuf>, CheckpointError> {
    let workdir = workdir.as_ref();
    Ok(read_pointer(workdir)?.map(|p| workdir.join(format!("{PREFIX}{p}"))))
}

/// Saves a checkpoint into `workdir` and makes it LAST. A `keep` checkpoint is never
/// deleted; otherwise it is named `-tmp` and deleted once a newer one is LAST. Leftovers of
/// interrupted saves are removed. Returns the checkpoint's folder.
pub fn save(
    workdir: impl AsRef<Path>,
    ckpt: &Checkpoint,
    keep: bool,
) -> Result<PathBuf, CheckpointError> {
    let workdir = workdir.as_ref();
    let mut seen = std::collections::HashSet::new();
    let mut files = Vec::with_capacity(ckpt.leaves.len());
    for (leaf, _) in &ckpt.leaves {
        let file = leaf_file(leaf)?;
        if !seen.insert(file.clone()) {
            return Err(CheckpointError::DuplicateLeaf(leaf.clone()));
        }
        files.push(file);
    }
    let name = dir_name(ckpt.step, keep);
    if let Some(p) = read_pointer(workdir)? {
        if p.trim_end_matches("-tmp").parse::<u64>().ok() == Some(ckpt.step) {
            return Err(CheckpointError::Exists {
                path: workdir.join(LAST),
                step: ckpt.step,
            });
        }
    }
    let staging = workdir.join(format!("{name}{STAGING}"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;

    let mut leaves = Vec::with_capacity(ckpt.leaves.len());
    for ((leaf, a), file) in ckpt.leaves.iter().zip(files) {
        let path = staging.join(&file);
        let mut enc = zstd::Encoder::new(Vec::new(), 3).map_err(io(&path))?;
        enc.include_checksum(true).map_err(io(&path))?;
        enc.write_all(a.bytes()).map_err(io(&path))?;
        write_atomic(&path, &enc.finish().map_err(io(&path))?)?;
        leaves.push(LeafEntry {
            name: leaf.clone(),
            file,
            dtype: a.dtype().name().to_string(),
            shape: a.shape().to_vec(),
            nbytes: a.bytes().len(),
        });
    }
    let manifest = Manifest {
        format: FORMAT.to_string(),
        step: ckpt.step,
        leaves,
        extra: ckpt.extra.clone(),
    };
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    write_atomic(&staging.join(MANIFEST), &text)?;
    sync_dir(&staging)?;

    let dir = workdir.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::rename(&staging, &dir).map_err(io(&dir))?;
    sync_dir(workdir)?;

    let cur = workdir.join(CUR);
    let pointer = name.strip_prefix(PREFIX).expect("named with the prefix");
    let mut f = std::fs::File::create(&cur).map_err(io(&cur))?;
    f.write_all(pointer.as_bytes()).map_err(io(&cur))?;
    f.sync_all().map_err(io(&cur))?;
    std::fs::rename(&cur, workdir.join(LAST)).map_err(io(&cur))?;
    sync_dir(workdir)?;

    remove_leftovers(workdir, &name)?;
    Ok(dir)
}

/// Deletes every `-tmp` checkpoint but `current`, and every unfinished `.writing` folder.
fn remove_leftovers(workdir: &Path, current: &str) -> Result<(), CheckpointError> {
    for entry in std::fs::read_dir(workdir).map_err(io(workdir))? {
        let entry = entry.map_err(io(workdir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = name.starts_with(PREFIX)
            && name != current
            && (name.ends_with("-tmp") || name.ends_with(STAGING));
        if stale && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    Ok(())
}

/// Loads the checkpoint `checkpoint.bv-LAST` points at; `None` if the workdir has none.
pub fn load_last(workdir: impl AsRef<Path>) -> Result<Option<Checkpoint>, CheckpointError> {
    last_dir(workdir)?.map(load).transpose()
}

/// Loads the checkpoint in folder `dir`, checking every file against the manifest.
pub fn load(dir: impl AsRef<Path>) -> Result<Checkpoint, CheckpointError> {
    let dir = dir.as_ref();
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(io(&path))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| corrupt(&path, format!("invalid manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(corrupt(
            &path,
            format!("unknown format {:?}, expected {FORMAT:?}", manifest.format),
        ));
    }
    let mut leaves = Vec::with_capacity(manifest.leaves.len());
    for e in &manifest.leaves {
        if leaf_file(&e.name).ok().as_deref() != Some(e.file.as_str()) {
            return Err(corrupt(
                &path,
                format!("leaf {:?} has file name {:?}", e.name, e.file),
            ));
        }
        let file = dir.join(&e.file);
        let dtype = DType::ALL
            .into_iter()
            .find(|d| d.name() == e.dtype)
            .ok_or_else(|| {
                corrupt(
                    &path,
                    format!("leaf {:?}: unknown dtype {:?}", e.name, e.dtype),
                )
            })?;
        let compressed = std::fs::read(&file).map_err(io(&file))?;
        let bytes = zstd::decode_all(compressed.as_slice())
            .map_err(|err| corrupt(&file, format!("damaged zstd data: {err}")))?;
        if bytes.len() != e.nbytes {
            return Err(corrupt(
                &file,
                format!(
                    "{} bytes after decompression, manifest says {}",
                    bytes.len(),
                    e.nbytes
                ),
            ));
        }
        let a = HostArray::from_bytes(dtype, &e.shape, bytes)
            .map_err(|err| corrupt(&file, err.to_string()))?;
        leaves.push((e.name.clone(), a));
    }
    Ok(Checkpoint {
        step: manifest.step,
        leaves,
        extra: manifest.extra,
    })
}
