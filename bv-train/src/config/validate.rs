//! Value checks of a config that need neither the dataset nor the devices: ranges, pp
//! strings, and the keys bv reads only in part. [`Config::validate`] runs before a run
//! touches anything (the workdir, a dataset to prepare), and again in [`super::Plan::new`],
//! so `bv-train config` reports the same errors. Each error names its key.

use std::path::Path;

use super::plan::PlanError;
use super::Config;
use crate::pp::{self, Pipeline, OPS};

/// big_vision's default `pp_modules` (train.py).
const DEFAULT_PP_MODULES: &[&str] = &["ops_general", "ops_image", "ops_text"];

/// big_vision's pp modules (`big_vision/pp/...`) that a config may list; `proj.*` modules are
/// accepted too. Ops of modules bv has not ported are simply absent from the registry.
const PP_MODULES: &[&str] = &[
    "ops_general",
    "ops_image",
    "ops_text",
    "archive.randaug",
    "archive.autoaugment",
    "autoaugment",
];

fn invalid(key: impl Into<String>, msg: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        key: key.into(),
        msg: msg.into(),
    }
}

/// A number that must be finite and at least `min` (`> min` when `strict`).
fn at_least(key: &str, v: f64, min: f64, strict: bool, why: &str) -> Result<(), PlanError> {
    let ok = v.is_finite() && if strict { v > min } else { v >= min };
    if ok {
        return Ok(());
    }
    let relation = if strict { "above" } else { "at least" };
    Err(invalid(key, format!("{v} is not {relation} {min}; {why}")))
}

/// Checks a path a config or flag names: a local path, `gs://BUCKET/...` or
/// `s3://BUCKET/...` ([`crate::storage`]); any other `scheme://` is refused rather than taken
/// as a local folder named `scheme:`.
pub fn check_location(key: &str, path: &Path) -> Result<(), PlanError> {
    crate::storage::check(path).map_err(|e| invalid(key, format!("{:?}: {e}", path.display())))
}

impl Config {
    /// Checks every value that can be checked without the dataset or the devices.
    pub fn validate(&self) -> Result<(), PlanError> {
        self.check_numbers()?;
        self.check_pp()?;
        self.check_partly_supported()?;
        for (key, path) in [
            (
                "model_init",
                self.model_init.as_ref().and_then(|v| v.as_str()),
            ),
            ("resume", self.resume.as_deref()),
            ("input.data.data_dir", self.input.data.data_dir.as_deref()),
        ] {
            if let Some(p) = path {
                check_location(key, Path::new(p))?;
            }
        }
        Ok(())
    }

    fn check_numbers(&self) -> Result<(), PlanError> {
        if self.input.batch_size == 0 {
            return Err(invalid("input.batch_size", "must be positive"));
        }
        at_least(
            "lr",
            self.lr,
            0.0,
            false,
            "a negative learning rate climbs the loss instead of descending it",
        )?;
        if let Some(wd) = self.wd {
            at_least("wd", wd, 0.0, false, "use 0 for no weight decay")?;
        }
        if let Some(c) = self.grad_clip_norm {
            at_least(
                "grad_clip_norm",
                c,
                0.0,
                true,
                "remove the key to train without clipping",
            )?;
        }
        if let Some(b) = self.init_head_bias.filter(|b| !b.is_finite()) {
            return Err(invalid("init_head_bias", format!("{b} is not finite")));
        }
        if self.num_classes == Some(0) {
            return Err(invalid("num_classes", "must be positive"));
        }
        if self.input.shuffle_buffer_size == Some(0) {
            return Err(invalid(
                "input.shuffle_buffer_size",
                "must be at least 1 (1 reads in file order)",
            ));
        }
        if let Some(p) = self.mixup.as_ref().map(|m| m.p) {
            at_least("mixup.p", p, 0.0, false, "use 0 to disable mixup")?;
        }
        for (name, e) in &self.evals {
            if e.batch_size == Some(0) {
                return Err(invalid(
                    format!("evals.{name}.batch_size"),
                    "must be positive",
                ));
            }
        }
        Ok(())
    }

    /// Every pp string builds, and uses only ops of the modules `pp_modules` lists (as
    /// big_vision registers only the ops of the modules it imports).
    fn check_pp(&self) -> Result<(), PlanError> {
        let modules: Vec<&str> = match &self.pp_modules {
            Some(m) => m.iter().map(String::as_str).collect(),
            None => DEFAULT_PP_MODULES.to_vec(),
        };
        for m in &modules {
            if !PP_MODULES.contains(m) && !m.starts_with("proj.") {
                return Err(invalid(
                    "pp_modules",
                    format!(
                        "{m:?} is not a pp module of big_vision; it has {}{}",
                        PP_MODULES.join(", "),
                        super::error::closest(m, PP_MODULES.iter().copied())
                            .map(|s| format!(" (did you mean {s:?}?)"))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
        let mut strings = vec![("input.pp".to_string(), self.input.pp.as_str())];
        for (name, e) in &self.evals {
            for (key, s) in [
                ("pp_fn", &e.pp_fn),
                ("pp_train", &e.pp_train),
                ("pp_eval", &e.pp_eval),
            ] {
                if let Some(s) = s {
                    strings.push((format!("evals.{name}.{key}"), s.as_str()));
                }
            }
        }
        for (key, spec) in strings {
            Pipeline::build(spec, OPS).map_err(|e| invalid(&key, e.to_string()))?;
            for call in pp::parse::parse(spec).map_err(|e| invalid(&key, e.to_string()))? {
                let def = OPS.iter().find(|d| d.name == call.name);
                if let Some(def) = def.filter(|d| !modules.contains(&d.module)) {
                    return Err(invalid(
                        &key,
                        format!(
                            "pp op '{}' is registered by big_vision's pp module {:?}, which \
                             pp_modules ({}) does not list; add it to pp_modules",
                            def.name,
                            def.module,
                            modules.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Keys bv supports in part: each value bv cannot honour is refused with the reason
    /// (docs/porting.md).
    fn check_partly_supported(&self) -> Result<(), PlanError> {
        if self.prefetch_to_device == Some(0) {
            return Err(invalid(
                "prefetch_to_device",
                "must be at least 1 (the batch of the next step)",
            ));
        }
        if self.input.cache_raw == Some(true) {
            return Err(invalid(
                "input.cache_raw",
                "bv reads the prepared dataset from local files, which the operating \
                 system's page cache already keeps in memory when RAM allows; an in-process \
                 copy of the raw records would hold the dataset twice. Remove the key (or \
                 set it to false)",
            ));
        }
        if self.mesh_allow_split_physical_axes == Some(false) {
            return Err(invalid(
                "mesh_allow_split_physical_axes",
                "bv lays the mesh out in device-id order and does not map mesh axes onto the \
                 physical axes of a TPU slice, so it cannot promise that no physical axis is \
                 split; remove the key (bv behaves as with true)",
            ));
        }
        if let Some(rules) = &self.sharding_rules {
            let batch_axis = self
                .mesh
                .as_ref()
                .and_then(|m| m.first())
                .map_or("data", |(a, _)| a.as_str());
            for (i, (logical, target)) in rules.iter().enumerate() {
                let axes: Vec<&str> = match target {
                    serde_json::Value::String(s) => vec![s.as_str()],
                    serde_json::Value::Array(v) => v.iter().filter_map(|x| x.as_str()).collect(),
                    _ => Vec::new(),
                };
                if logical != "act_batch" || axes != [batch_axis] {
                    return Err(invalid(
                        format!("sharding_rules.{i}"),
                        format!(
                            "bv's models put no logical-axis constraints on activations; XLA \
                             propagates the layouts of the batch (split over the mesh's first \
                             axis, {batch_axis:?}) and of the parameters (sharding_strategy). \
                             Only (\"act_batch\", {batch_axis:?}), which says just that, is \
                             accepted; remove the rule"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn only_local_gs_and_s3_locations_are_accepted() {
        for p in ["hdfs://nn/run", "https://x/y.npz", "gs:///run"] {
            let e = check_location("--workdir", &PathBuf::from(p)).unwrap_err();
            assert!(e.to_string().starts_with("--workdir: "), "{e}");
            assert!(e.to_string().contains(p), "{e}");
        }
        for p in [
            "workdirs/run",
            "/tmp/a:b",
            "./x",
            "a//b",
            "gs://bucket/run",
            "s3://b/r",
        ] {
            check_location("--workdir", &PathBuf::from(p)).unwrap();
        }
    }
}
