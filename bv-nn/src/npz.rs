//! big_vision's npz checkpoints: flat `/`-joined parameter names (`params/` and
//! `opt/target/` prefixes accepted), loading into a model's initial parameters with
//! `dont_load` regexes and shape checks (`models/common.py::merge_params`), the ViT's
//! position-embedding resampling, and export that `numpy.load` reads.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use bv_core::io::{read_npz, write_npz, Compression, HostArray, IoError};
use bv_core::{Array, DType};
use regex::Regex;

use crate::models::ImageModel;
use crate::Params;

/// Why a checkpoint could not be read, merged or written.
#[derive(Debug)]
pub enum NpzError {
    /// Reading or writing the file failed (missing, truncated, not an npz).
    Io(IoError),
    /// A `dont_load` pattern is not a valid regex.
    BadPattern {
        /// The pattern.
        pattern: String,
        /// The regex error.
        reason: String,
    },
    /// Names on one side only, not covered by `dont_load`.
    Mismatch {
        /// The checkpoint.
        file: PathBuf,
        /// In the model but not in the checkpoint.
        missing: Vec<String>,
        /// In the checkpoint but not in the model.
        unexpected: Vec<String>,
    },
    /// The model could not convert the checkpoint's layout to its own (e.g. encoder
    /// blocks that cannot be stacked for a scanned ViT).
    Convert {
        /// The checkpoint.
        file: PathBuf,
        /// Why, naming the parameters.
        reason: String,
    },
    /// Copying a parameter between host and device failed.
    Device {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// `model_init` names something that cannot be loaded (an unknown key, a vanity name
    /// whose file is not here, a checkpoint without the part asked for).
    ModelInit {
        /// What is wrong and what to do.
        reason: String,
    },
    /// A parameter of another shape than the model's (and no resampling for it).
    Shape {
        /// The checkpoint.
        file: PathBuf,
        /// The parameter.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The checkpoint's shape.
        found: Vec<usize>,
    },
}

impl fmt::Display for NpzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NpzError::Io(e) => write!(f, "{e}"),
            NpzError::Device { name, reason } => {
                write!(f, "parameter `{name}`: host/device copy failed: {reason}")
            }
            NpzError::ModelInit { reason } => write!(f, "model_init: {reason}"),
            NpzError::Convert { file, reason } => {
                write!(f, "{}: {reason}", file.display())
            }
            NpzError::BadPattern { pattern, reason } => {
                write!(f, "dont_load pattern `{pattern}`: {reason}")
            }
            NpzError::Mismatch {
                file,
                missing,
                unexpected,
            } => {
                write!(f, "{}: parameters differ from the model's", file.display())?;
                for m in missing {
                    write!(f, "\n - {m} (in the model, not in the checkpoint)")?;
                }
                for u in unexpected {
                    write!(f, "\n + {u} (in the checkpoint, not in the model)")?;
                }
                write!(
                    f,
                    "\nadd regexes for them to dont_load to keep their init values"
                )
            }
            NpzError::Shape {
                file,
                name,
                expected,
                found,
            } => write!(
                f,
                "{}: parameter `{name}` has shape {found:?}, the model expects {expected:?}",
                file.display()
            ),
        }
    }
}

impl std::error::Error for NpzError {}

impl From<IoError> for NpzError {
    fn from(e: IoError) -> Self {
        NpzError::Io(e)
    }
}

/// The parameters of an npz checkpoint (`utils.load_params`): bare names, or the entries
/// under `params/` or `opt/target/` with that prefix removed when the file has them.
pub fn read(path: impl AsRef<Path>) -> Result<Params<HostArray>, NpzError> {
    let entries = read_npz(path.as_ref())?;
    let prefix = ["params/", "opt/target/"]
        .into_iter()
        .find(|p| entries.iter().any(|(k, _)| k.starts_with(p)));
    Ok(match prefix {
        Some(p) => entries
            .into_iter()
            .filter_map(|(k, a)| Some((k.strip_prefix(p)?.to_string(), a)))
            .collect(),
        None => entries.into_iter().collect(),
    })
}

/// Writes `params` as an uncompressed npz with their names as keys (`np.savez`).
pub fn write(path: impl AsRef<Path>, params: &Params<HostArray>) -> Result<(), NpzError> {
    Ok(write_npz(path, params.iter(), Compression::Stored)?)
}

/// Compiles `dont_load` patterns; each must match a whole name (`re.fullmatch`).
fn patterns(dont_load: &[String]) -> Result<Vec<Regex>, NpzError> {
    dont_load
        .iter()
        .map(|p| {
            Regex::new(&format!("^(?:{p})$")).map_err(|e| NpzError::BadPattern {
                pattern: p.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// `merge_params(loaded, init, dont_load)`: the model's names in init order, values from
/// `loaded` except names matching a `dont_load` regex (those keep `init`). Names on one
/// side only are errors unless `dont_load` covers them; a shape differing from the
/// model's is an error unless `model` resamples that parameter.
pub fn merge(
    model: &dyn ImageModel,
    loaded: Params<HostArray>,
    init: &Params<HostArray>,
    dont_load: &[String],
    file: &Path,
) -> Result<Params<HostArray>, NpzError> {
    let resample = |name: &str, v: &HostArray, shape: &[usize]| model.resample(name, v, shape);
    merge_with(&resample, loaded, init, dont_load, file)
}

/// A function that resamples a loaded parameter to the model's shape (see
/// [`ImageModel::resample`]); `None` where a shape change is an error.
pub type Resample<'a> = &'a dyn Fn(&str, &HostArray, &[usize]) -> Option<HostArray>;

/// [`merge`] with the resampling given as a function (for models that are not an
/// [`ImageModel`], such as the text tower).
pub fn merge_with(
    resample: Resample<'_>,
    loaded: Params<HostArray>,
    init: &Params<HostArray>,
    dont_load: &[String],
    file: &Path,
) -> Result<Params<HostArray>, NpzError> {
    let skip = patterns(dont_load)?;
    let keep_init = |name: &str| skip.iter().any(|r| r.is_match(name));
    let model_names: HashSet<&str> = init.names().collect();
    let mut missing = Vec::new();
    let mut merged = Params::new();
    for (name, init_value) in init.iter() {
        match loaded.get(name) {
            Some(v) if !keep_init(name) => merged.insert(name, v.clone()),
            None if !keep_init(name) => missing.push(name.to_string()),
            _ => merged.insert(name, init_value.clone()),
        }
    }
    let unexpected: Vec<String> = loaded
        .names()
        .filter(|n| !model_names.contains(n) && !keep_init(n))
        .map(str::to_string)
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(NpzError::Mismatch {
            file: file.to_path_buf(),
            missing,
            unexpected,
        });
    }
    merged
        .into_iter()
        .map(|(name, value)| {
            let want = init.get(&name).expect("merged names are the model's");
            let value = match_dtype(value, want.dtype());
            if value.shape() == want.shape() {
                return Ok((name, value));
            }
            match resample(&name, &value, want.shape()) {
                Some(v) => Ok((name, v)),
                None => Err(NpzError::Shape {
                    file: file.to_path_buf(),
                    expected: want.shape().to_vec(),
                    found: value.shape().to_vec(),
                    name,
                }),
            }
        })
        .collect()
}

/// `value` converted to `dtype` when both are floating point (a bfloat16 checkpoint into a
/// float32 model); unchanged otherwise.
fn match_dtype(value: HostArray, dtype: DType) -> HostArray {
    if value.dtype() == dtype || !value.dtype().is_float() || !dtype.is_float() {
        return value;
    }
    let converted = match dtype {
        DType::F32 => HostArray::from_slice(
            &value.to_f64().iter().map(|&v| v as f32).collect::<Vec<_>>(),
            value.shape(),
        ),
        DType::F64 => HostArray::from_slice(&value.to_f64(), value.shape()),
        _ => return value,
    };
    converted.unwrap_or(value)
}

/// Parameters copied to the host (for [`load`] and [`write`]).
pub fn to_host(params: &Params<Array>) -> Result<Params<HostArray>, NpzError> {
    params
        .iter()
        .map(|(name, a)| {
            let bytes = a.to_bytes().map_err(|e| NpzError::Device {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
            Ok((
                name.to_string(),
                HostArray::from_bytes(a.dtype(), a.shape(), bytes)?,
            ))
        })
        .collect()
}

/// Parameters copied to the default device.
pub fn to_device(params: &Params<HostArray>) -> Result<Params<Array>, NpzError> {
    params
        .iter()
        .map(|(name, a)| {
            let array = Array::from_bytes(a.bytes(), a.dtype(), a.shape()).map_err(|e| {
                NpzError::Device {
                    name: name.to_string(),
                    reason: e.to_string(),
                }
            })?;
            Ok((name.to_string(), array))
        })
        .collect()
}

/// `model.load(init_params, file, model_cfg, dont_load)`: reads `file`, applies the
/// model's checkpoint fixes and layout conversions and merges it into `init` (see
/// [`merge`]).
pub fn load(
    model: &dyn ImageModel,
    init: &Params<HostArray>,
    file: impl AsRef<Path>,
    dont_load: &[String],
) -> Result<Params<HostArray>, NpzError> {
    let file = file.as_ref();
    let loaded = model
        .fix_checkpoint(read(file)?)
        .map_err(|reason| NpzError::Convert {
            file: file.to_path_buf(),
            reason,
        })?;
    merge(model, loaded, init, dont_load, file)
}

/// Bilinear resampling of a square grid of embeddings `(1, g·g, D)` to `(1, n·n, D)` as
/// `scipy.ndimage.zoom(order=1)` does it (corners aligned: output `i` samples input
/// `i·(g-1)/(n-1)`), computed in float64 and stored as float32.
pub fn resample_grid(old: &[f32], g: usize, n: usize, d: usize) -> Vec<f32> {
    let coord = |i: usize| {
        if n <= 1 || g <= 1 {
            (0, 0, 0.0)
        } else {
            let x = i as f64 * (g - 1) as f64 / (n - 1) as f64;
            let lo = (x.floor() as usize).min(g - 1);
            let hi = (lo + 1).min(g - 1);
            (lo, hi, x - lo as f64)
        }
    };
    let at = |r: usize, c: usize, k: usize| f64::from(old[(r * g + c) * d + k]);
    let mut out = Vec::with_capacity(n * n * d);
    for i in 0..n {
        let (r0, r1, fr) = coord(i);
        for j in 0..n {
            let (c0, c1, fc) = coord(j);
            for k in 0..d {
                let top = at(r0, c0, k) * (1.0 - fc) + at(r0, c1, k) * fc;
                let bottom = at(r1, c0, k) * (1.0 - fc) + at(r1, c1, k) * fc;
                out.push((top * (1.0 - fr) + bottom * fr) as f32);
            }
        }
    }
    out
}
