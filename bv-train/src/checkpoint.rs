//! Checkpoints in big_vision's workdir layout, safe against a kill at any moment, written
//! in shards: every process writes the blocks of the arrays it holds, each distinct block
//! exactly once across processes (a replicated array once), and loading assembles the
//! arrays whatever mesh wrote them, so a run can continue on another device count.
//!
//! ```text
//! workdir/checkpoint.bv-000001000-tmp/   rotated (deleted once a newer one is LAST)
//! workdir/checkpoint.bv-000002000/       kept (keep_ckpt_steps, the final step)
//!     manifest.json                      step, dtype, global shape and blocks of each leaf
//!     params~Transformer~...~kernel.zst  a leaf in one block, `/` written as `~`
//!     params~...~embedding@3.zst         block 3 of a leaf in several blocks
//! workdir/checkpoint.bv-LAST             "000002000": the checkpoint to resume from
//! ```
//!
//! A checkpoint is assembled in `checkpoint.bv-<step>.writing/`, each file written under a
//! temporary name, fsynced and renamed; the folder is then renamed into place and only
//! after that does `checkpoint.bv-LAST` (written as `checkpoint.bv-CUR`, renamed) point at
//! it. Until that last rename the previous checkpoint stays LAST and whole. With several
//! processes, process 0 prepares the folder, all write their blocks, and once the
//! coordination barrier says all are done, process 0 writes the manifest and renames.
//!
//! On a bucket (`gs://`, `s3://`, see [`crate::storage`]) objects are written whole but
//! folders cannot be renamed, so the blocks go straight into `checkpoint.bv-<step>/`, then
//! the manifest, and `checkpoint.bv-LAST` last: a checkpoint without its manifest is never
//! loaded, and until LAST names the new one the previous one stays LAST and whole. Rewriting
//! a step first deletes its folder, so a stale manifest never sits beside new blocks.
//!
//! Everything a resume trusts is checksummed (format `bv-checkpoint-3`): the manifest holds
//! the SHA-256 of each block file, and its own SHA-256 (over its JSON with keys sorted and
//! the `checksum` key left out), so an edited step, data position or block file is refused
//! rather than silently resumed from. The checksums catch damage and edits, not a forger.
//! Checkpoints of the earlier formats (`bv-checkpoint-2`, without checksums, and the
//! one-file-per-leaf `bv-checkpoint-1`) still load.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bv_core::distributed::CoordinationClient;
use bv_core::io::HostArray;
use bv_core::sharding::Mesh;
use bv_core::{Array, DType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage;

/// The checkpoint prefix inside the workdir (`save_ckpt_path` in train.py).
const PREFIX: &str = "checkpoint.bv-";
const LAST: &str = "checkpoint.bv-LAST";
const CUR: &str = "checkpoint.bv-CUR";
const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "bv-checkpoint-3";
const FORMAT_V2: &str = "bv-checkpoint-2";
const FORMAT_V1: &str = "bv-checkpoint-1";
/// The manifest key of the manifest's own checksum.
const CHECKSUM: &str = "checksum";
const STAGING: &str = ".writing";
/// How long a process waits for the others at each step of a save.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(600);

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
    /// An array's shards could not be read from its devices.
    #[error("leaf {name:?}: {msg}")]
    Device { name: String, msg: String },
    /// The other processes did not reach a step of the save in time.
    #[error("checkpoint of step {step}, process {process}: {msg}")]
    Sync {
        step: u64,
        process: usize,
        msg: String,
    },
    /// The checkpoint a run would resume from is damaged; `advice` names an older complete
    /// one and the command that makes it LAST.
    #[error("cannot resume from {}: {cause}\n  {advice}", dir.display())]
    Unusable {
        dir: PathBuf,
        cause: Box<CheckpointError>,
        advice: String,
    },
}

/// A block of an array: where it starts in the global array and its shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub start: Vec<usize>,
    pub shape: Vec<usize>,
}

/// A leaf as it is saved: its global shape and type, every distinct block of it (the same
/// list in every process), and the row-major bytes of the blocks this process writes.
#[derive(Clone, Debug)]
pub struct LeafShards {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub blocks: Vec<Block>,
    /// `(index into blocks, bytes)` for the blocks this process writes.
    pub local: Vec<(usize, Vec<u8>)>,
}

impl LeafShards {
    /// A host array as one block, written by this process.
    pub fn whole(name: &str, a: &HostArray) -> LeafShards {
        LeafShards {
            name: name.to_string(),
            dtype: a.dtype(),
            shape: a.shape().to_vec(),
            blocks: vec![Block {
                start: vec![0; a.shape().len()],
                shape: a.shape().to_vec(),
            }],
            local: vec![(0, a.bytes().to_vec())],
        }
    }

    /// The distinct blocks of `a` over its mesh, each owned by the first mesh device that
    /// holds it (replicas are written once), with the bytes of those whose owner is in
    /// `writes` (see [`owned_devices`]).
    pub fn of_array(
        name: &str,
        a: &Array,
        writes: &HashSet<i64>,
    ) -> Result<LeafShards, CheckpointError> {
        let device = |e: bv_core::ArrayError| CheckpointError::Device {
            name: name.to_string(),
            msg: e.to_string(),
        };
        let mut blocks: Vec<Block> = Vec::new();
        let mut local = Vec::new();
        for (k, (id, ranges)) in a.shards().map_err(device)?.into_iter().enumerate() {
            let block = Block {
                start: ranges.iter().map(|r| r.start as usize).collect(),
                shape: ranges.iter().map(|r| (r.end - r.start) as usize).collect(),
            };
            if blocks.contains(&block) {
                continue;
            }
            blocks.push(block);
            if writes.contains(&id) {
                local.push((blocks.len() - 1, a.shard_to_bytes(k).map_err(device)?));
            }
        }
        Ok(LeafShards {
            name: name.to_string(),
            dtype: a.dtype(),
            shape: a.shape().to_vec(),
            blocks,
            local,
        })
    }
}

/// The mesh devices whose blocks this process writes: its addressable ones. When the mesh
/// holds only this process's devices while several processes run, each process trains a
/// replica of its own (the CPU plugin has no collectives across processes): then process 0
/// writes them all and the others none.
pub fn owned_devices(
    mesh: &Mesh,
    process_id: usize,
    num_processes: usize,
) -> Result<HashSet<i64>, CheckpointError> {
    let client = bv_core::default_client().map_err(|e| CheckpointError::Device {
        name: String::new(),
        msg: e.to_string(),
    })?;
    let here: HashSet<i64> = client
        .addressable_devices()
        .iter()
        .map(|d| i64::from(d.id()))
        .collect();
    let replicas = num_processes > 1 && mesh.device_ids().iter().all(|d| here.contains(d));
    if replicas && process_id != 0 {
        return Ok(HashSet::new());
    }
    Ok(here)
}

/// The processes of a multi-process save and the coordination service they share.
pub struct Peers<'a> {
    pub process_id: usize,
    pub num_processes: usize,
    pub kv: &'a CoordinationClient,
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
    dtype: String,
    shape: Vec<usize>,
    blocks: Vec<BlockEntry>,
}

#[derive(Serialize, Deserialize)]
struct BlockEntry {
    file: String,
    start: Vec<usize>,
    shape: Vec<usize>,
    nbytes: usize,
    /// Hex SHA-256 of the file (empty in `bv-checkpoint-2`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sha256: String,
}

/// The manifest of `bv-checkpoint-1`: one file per leaf.
#[derive(Deserialize)]
struct ManifestV1 {
    step: u64,
    leaves: Vec<LeafEntryV1>,
    extra: serde_json::Value,
}

#[derive(Deserialize)]
struct LeafEntryV1 {
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

/// The hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The checksum of a manifest: the SHA-256 of its compact JSON with keys sorted, without
/// the checksum itself.
fn manifest_checksum(manifest: &serde_json::Value) -> String {
    let mut v = manifest.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove(CHECKSUM);
    }
    sha256_hex(&serde_json::to_vec(&sort_keys(v)).expect("JSON serializes"))
}

/// `v` with every object's keys in sorted order (whatever order serde_json keeps).
fn sort_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let sorted: BTreeMap<String, serde_json::Value> =
                m.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sort_keys).collect())
        }
        other => other,
    }
}

/// The step a checkpoint folder's name gives (`checkpoint.bv-000000100[-tmp]`).
fn step_of_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?;
    let digits = digits.strip_suffix("-tmp").unwrap_or(digits);
    (digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The folder name of the checkpoint of `step` (`checkpoint.bv-000000100[-tmp]`).
pub fn dir_name(step: u64, keep: bool) -> String {
    format!("{PREFIX}{step:09}{}", if keep { "" } else { "-tmp" })
}

/// Writes `bytes` to `path` whole or not at all (see [`storage::write_atomic`]).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    storage::write_atomic(path, bytes).map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    storage::sync_dir(dir).map_err(io(dir))
}

fn leaf_file(name: &str) -> Result<String, CheckpointError> {
    if name.is_empty() || name.contains(['~', '\\', '\0']) || name.split('/').any(|p| p == "..") {
        return Err(CheckpointError::LeafName(name.to_string()));
    }
    Ok(name.replace('/', "~"))
}

/// The file of block `k` of a leaf in `n` blocks: `a~b.zst`, or `a~b@3.zst`.
fn block_file(name: &str, k: usize, n: usize) -> Result<String, CheckpointError> {
    let base = leaf_file(name)?;
    Ok(if n == 1 {
        format!("{base}.zst")
    } else {
        format!("{base}@{k}.zst")
    })
}

/// The content of `checkpoint.bv-LAST` (`000001000` or `000001000-tmp`), if any.
fn read_pointer(workdir: &Path) -> Result<Option<String>, CheckpointError> {
    let path = workdir.join(LAST);
    match storage::read_opt(&path) {
        Ok(Some(s)) => {
            let s = String::from_utf8_lossy(&s).trim().to_string();
            let digits = s.strip_suffix("-tmp").unwrap_or(&s);
            if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(corrupt(
                    &path,
                    format!("expected a step like 000001000[-tmp], found {s:?}"),
                ));
            }
            Ok(Some(s))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// The folder `checkpoint.bv-LAST` points at, if the workdir has one.
pub fn last_dir(workdir: impl AsRef<Path>) -> Result<Option<PathBuf>, CheckpointError> {
    let workdir = workdir.as_ref();
    Ok(read_pointer(workdir)?.map(|p| workdir.join(format!("{PREFIX}{p}"))))
}

/// Saves a checkpoint of host arrays into `workdir` (one process) and makes it LAST. A
/// `keep` checkpoint is never deleted; otherwise it is named `-tmp` and deleted once a
/// newer one is LAST. Leftovers of interrupted saves are removed. Returns its folder.
pub fn save(
    workdir: impl AsRef<Path>,
    ckpt: &Checkpoint,
    keep: bool,
) -> Result<PathBuf, CheckpointError> {
    let leaves: Vec<LeafShards> = ckpt
        .leaves
        .iter()
        .map(|(name, a)| LeafShards::whole(name, a))
        .collect();
    save_shards(workdir, ckpt.step, &leaves, &ckpt.extra, keep, None)
}

/// [`save`] for leaves in blocks, from every process of a run: each writes its own blocks
/// (`leaves[i].local`), and process 0 also prepares the folder, writes the manifest and
/// makes the checkpoint LAST, in step with the others through `peers` (`None`: one
/// process). Every process must call it with the same leaves and block lists.
pub fn save_shards(
    workdir: impl AsRef<Path>,
    step: u64,
    leaves: &[LeafShards],
    extra: &serde_json::Value,
    keep: bool,
    peers: Option<&Peers>,
) -> Result<PathBuf, CheckpointError> {
    let workdir = workdir.as_ref();
    let lead = peers.is_none_or(|p| p.process_id == 0);
    let sync = |what: &str| -> Result<(), CheckpointError> {
        let Some(p) = peers else { return Ok(()) };
        p.kv.barrier(
            &format!("bv-checkpoint/{step}/{what}"),
            p.num_processes,
            BARRIER_TIMEOUT,
        )
        .map_err(|e| CheckpointError::Sync {
            step,
            process: p.process_id,
            msg: format!("waiting for the other processes ({what}): {e}"),
        })
    };
    let (mut bases, mut seen) = (HashSet::new(), HashSet::new());
    let mut files: Vec<Vec<String>> = Vec::with_capacity(leaves.len());
    for leaf in leaves {
        if !bases.insert(leaf_file(&leaf.name)?) {
            return Err(CheckpointError::DuplicateLeaf(leaf.name.clone()));
        }
        let n = leaf.blocks.len();
        let names: Vec<String> = (0..n)
            .map(|k| block_file(&leaf.name, k, n))
            .collect::<Result<_, _>>()?;
        for f in &names {
            if !seen.insert(f.clone()) {
                return Err(CheckpointError::DuplicateLeaf(leaf.name.clone()));
            }
        }
        files.push(names);
    }
    let name = dir_name(step, keep);
    let dir = workdir.join(&name);
    // On a bucket, where folders cannot be renamed, the checkpoint is written in place.
    let staging = if storage::is_bucket(workdir) {
        dir.clone()
    } else {
        workdir.join(format!("{name}{STAGING}"))
    };
    if lead {
        if let Some(p) = read_pointer(workdir)? {
            if p.trim_end_matches("-tmp").parse::<u64>().ok() == Some(step) {
                return Err(CheckpointError::Exists {
                    path: workdir.join(LAST),
                    step,
                });
            }
        }
        storage::remove_dir_all(&staging).map_err(io(&staging))?;
        storage::create_dir_all(&staging).map_err(io(&staging))?;
    }
    sync("open")?;

    let mut sums = BTreeMap::new();
    for (leaf, files) in leaves.iter().zip(&files) {
        for (k, bytes) in &leaf.local {
            let path = staging.join(&files[*k]);
            let mut enc = zstd::Encoder::new(Vec::new(), 3).map_err(io(&path))?;
            enc.include_checksum(true).map_err(io(&path))?;
            enc.write_all(bytes).map_err(io(&path))?;
            let compressed = enc.finish().map_err(io(&path))?;
            sums.insert(files[*k].clone(), sha256_hex(&compressed));
            write_atomic(&path, &compressed)?;
        }
    }
    // Process 0 writes the manifest, so the others hand it the checksums of their files.
    let sums_key = |i: usize| format!("bv-checkpoint/{step}/sha256/{i}");
    if let Some(p) = peers.filter(|p| p.process_id != 0) {
        let json = serde_json::to_vec(&sums).expect("checksums serialize");
        p.kv.put(&sums_key(p.process_id), &json)
            .map_err(|e| CheckpointError::Sync {
                step,
                process: p.process_id,
                msg: format!("handing over checksums: {e}"),
            })?;
    }
    sync("written")?;
    if let Some(p) = peers.filter(|_| lead) {
        for i in 1..p.num_processes {
            let fail = |msg: String| CheckpointError::Sync {
                step,
                process: p.process_id,
                msg,
            };
            let json =
                p.kv.get(&sums_key(i), BARRIER_TIMEOUT)
                    .map_err(|e| fail(format!("checksums of process {i}: {e}")))?;
            let theirs: BTreeMap<String, String> = serde_json::from_slice(&json)
                .map_err(|e| fail(format!("checksums of process {i}: {e}")))?;
            sums.extend(theirs);
        }
    }

    if lead {
        for (leaf, files) in leaves.iter().zip(&files) {
            let present = |f: &String| storage::is_file(&staging.join(f)).unwrap_or(false);
            if let Some(f) = files.iter().find(|f| !present(f) || !sums.contains_key(*f)) {
                return Err(corrupt(
                    &staging.join(f),
                    format!("no process wrote this block of leaf {:?}", leaf.name),
                ));
            }
        }
        let elem =
            |l: &LeafShards, b: &Block| b.shape.iter().product::<usize>() * l.dtype.size_in_bytes();
        let entries = leaves
            .iter()
            .zip(files)
            .map(|(l, files)| LeafEntry {
                name: l.name.clone(),
                dtype: l.dtype.name().to_string(),
                shape: l.shape.clone(),
                blocks: l
                    .blocks
                    .iter()
                    .zip(files)
                    .map(|(b, file)| BlockEntry {
                        sha256: sums[&file].clone(),
                        file,
                        start: b.start.clone(),
                        shape: b.shape.clone(),
                        nbytes: elem(l, b),
                    })
                    .collect(),
            })
            .collect();
        let manifest = Manifest {
            format: FORMAT.to_string(),
            step,
            leaves: entries,
            extra: extra.clone(),
        };
        let mut value = serde_json::to_value(&manifest).expect("a manifest serializes");
        let checksum = manifest_checksum(&value);
        value[CHECKSUM] = checksum.into();
        let text = serde_json::to_vec_pretty(&sort_keys(value)).expect("a manifest serializes");
        write_atomic(&staging.join(MANIFEST), &text)?;
        sync_dir(&staging)?;

        if staging != dir {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            std::fs::rename(&staging, &dir).map_err(io(&dir))?;
            sync_dir(workdir)?;
        }

        let cur = workdir.join(CUR);
        let pointer = name.strip_prefix(PREFIX).expect("named with the prefix");
        storage::write_via(&cur, &workdir.join(LAST), pointer.as_bytes()).map_err(io(&cur))?;
        sync_dir(workdir)?;

        remove_leftovers(workdir, &name)?;
    }
    sync("done")?;
    Ok(dir)
}

/// Deletes every `-tmp` checkpoint but `current`, and every unfinished `.writing` folder.
fn remove_leftovers(workdir: &Path, current: &str) -> Result<(), CheckpointError> {
    for entry in storage::list(workdir).map_err(io(workdir))? {
        let name = entry.name;
        let stale = name.starts_with(PREFIX)
            && name != current
            && (name.ends_with("-tmp") || name.ends_with(STAGING));
        if stale && entry.is_dir {
            let path = workdir.join(&name);
            storage::remove_dir_all(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Loads the checkpoint `checkpoint.bv-LAST` points at; `None` if the workdir has none.
pub fn load_last(workdir: impl AsRef<Path>) -> Result<Option<Checkpoint>, CheckpointError> {
    last_dir(workdir)?.map(load).transpose()
}

/// The checkpoint a run resumes from, and where it was found.
#[derive(Debug)]
pub struct Latest {
    pub checkpoint: Checkpoint,
    pub dir: PathBuf,
    /// True when `checkpoint.bv-LAST` is missing and this is the newest complete folder.
    pub without_pointer: bool,
}

/// Loads the checkpoint a run in `workdir` resumes from: the one `checkpoint.bv-LAST`
/// names, or, where that file is missing, the newest complete checkpoint folder; `None` if
/// there is none. A damaged one is an [`CheckpointError::Unusable`] naming the newest
/// older complete checkpoint and the command that makes it LAST.
pub fn load_latest(workdir: impl AsRef<Path>) -> Result<Option<Latest>, CheckpointError> {
    let workdir = workdir.as_ref();
    let (dir, without_pointer) = match read_pointer(workdir) {
        Ok(Some(p)) => (workdir.join(format!("{PREFIX}{p}")), false),
        Ok(None) => match checkpoint_dirs(workdir)?.pop() {
            Some((_, dir)) => (dir, true),
            None => return Ok(None),
        },
        Err(e) => return Err(unusable(workdir, &workdir.join(LAST), e)),
    };
    match load(&dir) {
        Ok(checkpoint) => Ok(Some(Latest {
            checkpoint,
            dir,
            without_pointer,
        })),
        Err(e) => Err(unusable(workdir, &dir, e)),
    }
}

/// The checkpoint folders of `workdir` (finished writes, whole or not), oldest first.
fn checkpoint_dirs(workdir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let mut dirs = Vec::new();
    for entry in storage::list(workdir).map_err(io(workdir))? {
        if let Some(step) = step_of_dir_name(&entry.name).filter(|_| entry.is_dir) {
            dirs.push((step, workdir.join(&entry.name)));
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// `error` for the checkpoint at `dir`, with the newest older complete checkpoint (its
/// manifest intact, every block file present) and how to resume from it.
fn unusable(workdir: &Path, dir: &Path, error: CheckpointError) -> CheckpointError {
    let below = dir
        .file_name()
        .and_then(|n| step_of_dir_name(&n.to_string_lossy()))
        .unwrap_or(u64::MAX);
    let older = checkpoint_dirs(workdir)
        .unwrap_or_default()
        .into_iter()
        .rev();
    let fallback = older
        .filter(|(step, d)| *step < below && d != dir)
        .find(|(_, d)| is_complete(d));
    let advice = match fallback {
        Some((step, d)) => {
            let name = d
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let pointer = name.strip_prefix(PREFIX).unwrap_or(&name).to_string();
            let last = workdir.join(LAST).display().to_string();
            let command = match last.split_once("://") {
                Some(("gs", _)) => format!("echo {pointer} | gcloud storage cp - {last}"),
                Some(("s3", _)) => format!("echo {pointer} | aws s3 cp - {last}"),
                _ => format!("echo {pointer} > {last}"),
            };
            format!(
                "the newest complete checkpoint before it is {name} (step {step}); to resume from it, run: {command}"
            )
        }
        None => format!(
            "{} holds no other complete checkpoint; to start afresh, train in a new --workdir",
            workdir.display()
        ),
    };
    CheckpointError::Unusable {
        dir: dir.to_path_buf(),
        cause: Box::new(error),
        advice,
    }
}

/// Whether a checkpoint folder has an intact manifest and every block file it lists.
fn is_complete(dir: &Path) -> bool {
    read_manifest(dir).is_ok_and(|(m, _)| {
        m.leaves
            .iter()
            .flat_map(|l| &l.blocks)
            .all(|b| storage::is_file(&dir.join(&b.file)).unwrap_or(false))
    })
}

/// Reads the manifest of the checkpoint in `dir`, checks its checksum and that its step is
/// the one the folder's name gives; earlier formats come back as the current one. Returns
/// it with its path.
fn read_manifest(dir: &Path) -> Result<(Manifest, PathBuf), CheckpointError> {
    let path = dir.join(MANIFEST);
    let text = storage::read(&path).map_err(io(&path))?;
    let invalid = |e: serde_json::Error| corrupt(&path, format!("invalid manifest: {e}"));
    let mut value: serde_json::Value = serde_json::from_slice(&text).map_err(invalid)?;
    let manifest = match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {
            let stored = value
                .as_object_mut()
                .and_then(|m| m.remove(CHECKSUM))
                .and_then(|c| c.as_str().map(str::to_string))
                .unwrap_or_default();
            let actual = manifest_checksum(&value);
            if stored != actual {
                return Err(corrupt(
                    &path,
                    format!("the manifest's checksum is {stored:?} but its content's is {actual:?}: it was changed after it was written"),
                ));
            }
            let m = serde_json::from_value::<Manifest>(value).map_err(invalid)?;
            let blocks = m.leaves.iter().flat_map(|l| &l.blocks);
            if let Some(b) = blocks.clone().find(|b| b.sha256.is_empty()) {
                return Err(corrupt(
                    &path,
                    format!("block file {:?} has no checksum", b.file),
                ));
            }
            m
        }
        Some(FORMAT_V2) => serde_json::from_value::<Manifest>(value).map_err(invalid)?,
        Some(FORMAT_V1) => {
            let v1: ManifestV1 = serde_json::from_value(value).map_err(invalid)?;
            Manifest {
                format: FORMAT_V1.to_string(),
                step: v1.step,
                leaves: v1
                    .leaves
                    .into_iter()
                    .map(|e| LeafEntry {
                        blocks: vec![BlockEntry {
                            file: e.file,
                            start: vec![0; e.shape.len()],
                            shape: e.shape.clone(),
                            nbytes: e.nbytes,
                            sha256: String::new(),
                        }],
                        name: e.name,
                        dtype: e.dtype,
                        shape: e.shape,
                    })
                    .collect(),
                extra: v1.extra,
            }
        }
        other => {
            return Err(corrupt(
                &path,
                format!(
                    "unknown format {other:?}, expected {FORMAT:?}, {FORMAT_V2:?} or {FORMAT_V1:?}"
                ),
            ))
        }
    };
    let named = dir
        .file_name()
        .and_then(|n| step_of_dir_name(&n.to_string_lossy()));
    if let Some(named) = named.filter(|s| *s != manifest.step) {
        return Err(corrupt(
            &path,
            format!(
                "the manifest says step {} but the folder is named for step {named}",
                manifest.step
            ),
        ));
    }
    Ok((manifest, path))
}

/// Loads the checkpoint in folder `dir`, checking the manifest and every file against its
/// checksum and assembling each leaf from its blocks.
pub fn load(dir: impl AsRef<Path>) -> Result<Checkpoint, CheckpointError> {
    let dir = dir.as_ref();
    let (manifest, path) = read_manifest(dir)?;
    let mut leaves = Vec::with_capacity(manifest.leaves.len());
    for e in &manifest.leaves {
        let dtype = DType::ALL
            .into_iter()
            .find(|d| d.name() == e.dtype)
            .ok_or_else(|| {
                corrupt(
                    &path,
                    format!("leaf {:?}: unknown dtype {:?}", e.name, e.dtype),
                )
            })?;
        let a = assemble(dir, &path, e, dtype)?;
        leaves.push((e.name.clone(), a));
    }
    Ok(Checkpoint {
        step: manifest.step,
        leaves,
        extra: manifest.extra,
    })
}

/// One leaf from its block files, checking that the blocks tile the array exactly.
fn assemble(
    dir: &Path,
    manifest: &Path,
    e: &LeafEntry,
    dtype: DType,
) -> Result<HostArray, CheckpointError> {
    let elem = dtype.size_in_bytes();
    let total: usize = e.shape.iter().product();
    let mut out = vec![0u8; total * elem];
    let mut covered = vec![false; total];
    let n = e.blocks.len();
    for (k, b) in e.blocks.iter().enumerate() {
        if block_file(&e.name, k, n).ok().as_deref() != Some(b.file.as_str()) {
            return Err(corrupt(
                manifest,
                format!("leaf {:?} block {k} has file name {:?}", e.name, b.file),
            ));
        }
        let fits = b.start.len() == e.shape.len()
            && b.shape.len() == e.shape.len()
            && (0..e.shape.len()).all(|d| b.start[d] + b.shape[d] <= e.shape[d]);
        if !fits {
            return Err(corrupt(
                manifest,
                format!(
                    "leaf {:?} of shape {:?}: block {k} at {:?} of shape {:?} does not fit",
                    e.name, e.shape, b.start, b.shape
                ),
            ));
        }
        let file = dir.join(&b.file);
        let compressed = storage::read(&file).map_err(io(&file))?;
        if !b.sha256.is_empty() && sha256_hex(&compressed) != b.sha256 {
            return Err(corrupt(
                &file,
                "the file's checksum differs from the manifest's: it is damaged or was changed",
            ));
        }
        let bytes = zstd::decode_all(compressed.as_slice())
            .map_err(|err| corrupt(&file, format!("damaged zstd data: {err}")))?;
        let want = b.shape.iter().product::<usize>() * elem;
        if bytes.len() != b.nbytes || bytes.len() != want {
            return Err(corrupt(
                &file,
                format!(
                    "{} bytes after decompression, manifest says {} for a block of shape {:?}",
                    bytes.len(),
                    b.nbytes,
                    b.shape
                ),
            ));
        }
        let mut overlap = false;
        for_each_run(&e.shape, &b.start, &b.shape, |g, o, run| {
            out[g * elem..(g + run) * elem].copy_from_slice(&bytes[o * elem..(o + run) * elem]);
            for c in &mut covered[g..g + run] {
                overlap |= *c;
                *c = true;
            }
        });
        if overlap {
            return Err(corrupt(
                manifest,
                format!("leaf {:?}: block {k} overlaps another", e.name),
            ));
        }
    }
    if let Some(i) = covered.iter().position(|c| !c) {
        return Err(corrupt(
            manifest,
            format!("leaf {:?}: element {i} is in no block", e.name),
        ));
    }
    HostArray::from_bytes(dtype, &e.shape, out).map_err(|err| corrupt(manifest, err.to_string()))
}

/// Calls `f(global offset, block offset, run)` for each contiguous row of the block at
/// `start` of shape `block` in a row-major array of `shape` (offsets and run in elements).
fn for_each_run(
    shape: &[usize],
    start: &[usize],
    block: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let Some((&run, outer)) = block.split_last() else {
        f(0, 0, 1);
        return;
    };
    if block.contains(&0) {
        return;
    }
    let rows: usize = outer.iter().product();
    let mut idx = vec![0usize; outer.len()];
    for row in 0..rows {
        let mut g = 0;
        for d in 0..outer.len() {
            g = g * shape[d] + start[d] + idx[d];
        }
        g = g * shape[outer.len()] + start[outer.len()];
        f(g, row * run, run);
        for d in (0..outer.len()).rev() {
            idx[d] += 1;
            if idx[d] < block[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}
