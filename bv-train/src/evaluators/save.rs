//! The `save` evaluator (big_vision's `evaluators/save.py`): runs the model over the eval
//! set and writes the requested outputs and inputs of every real example to an `.npz`
//! (`outputs/<name>`, `inputs/<key>`; deflated as big_vision's `save_checkpoint`), as a
//! temporary file renamed into place. Only process 0 writes; it reports no metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bv_core::io::{write_npz, Compression, HostArray};
use bv_core::sharding::Mesh;
use bv_core::{jit, Array, Jit, Tensor};

use super::{Context, DeviceParams, Evaluator, Outputs};
use crate::config::Eval;
use crate::data::{EvalConfig, Value};
use crate::error::TrainError;
use bv_core::tree::Params;

/// `(params, image, {input: value}, mask) -> ({output}, {input}, mask)`, replicated.
type SaveFn = Jit<
    (),
    (Params, Tensor, BTreeMap<String, Tensor>, Tensor),
    (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>, Tensor),
>;

/// Writes model outputs over an eval set.
pub struct Save {
    name: String,
    data: EvalConfig,
    mesh: Mesh,
    outfile: String,
    workdir: PathBuf,
    inputs: Option<Vec<String>>,
    outputs: Arc<Outputs>,
    writes: bool,
    predict: SaveFn,
}

/// Builds `evals.<name>` of type `save`.
pub fn build(name: &str, cfg: &Eval, ctx: &Context) -> Result<Box<dyn Evaluator>, TrainError> {
    super::check_pred(name, cfg, &["predict"])?;
    let data = ctx.pipeline(name, cfg, cfg.data.as_ref(), cfg.pp_fn.as_deref())?;
    let outfile = cfg
        .outfile
        .clone()
        .unwrap_or_else(|| format!("{{workdir}}/{name}-{{step:09d}}.npz"));
    outfile_path(&outfile, &ctx.workdir, 0)
        .map_err(|e| TrainError::setting(format!("evals.{name}.outfile"), e))?;
    let outputs = Outputs::new(cfg.outputs.clone().unwrap_or_else(|| vec!["logits".into()]));
    let (model, picked) = (ctx.model.clone(), outputs.clone());
    let predict = jit(
        move |(params, x, inputs, mask): (Params, Tensor, BTreeMap<String, Tensor>, Tensor)| {
            let (logits, out) = super::apply(model.as_ref(), params, &x);
            (picked.pick(&logits, &out), inputs, mask)
        },
    )
    .named(&format!("eval_{name}"))
    .sharded(ctx.mesh.clone(), super::replicated);
    Ok(Box::new(Save {
        name: name.to_string(),
        data,
        mesh: ctx.mesh.clone(),
        outfile,
        workdir: ctx.workdir.clone(),
        inputs: cfg.inputs.clone(),
        outputs,
        writes: ctx.process.0 == 0,
        predict,
    }))
}

/// `outfile` with `{workdir}`, `{step}` and `{step:0Nd}` filled in; other `{...}` fields
/// are errors.
pub fn outfile_path(
    outfile: &str,
    workdir: &std::path::Path,
    step: u64,
) -> Result<PathBuf, String> {
    let mut out = String::new();
    let mut rest = outfile;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{outfile:?} has an unclosed '{{'"))?
            + open;
        let field = &rest[open + 1..close];
        match field {
            "workdir" => out.push_str(&workdir.display().to_string()),
            "step" => out.push_str(&step.to_string()),
            _ => {
                let width = field
                    .strip_prefix("step:0")
                    .and_then(|w| w.strip_suffix('d'))
                    .and_then(|w| w.parse::<usize>().ok())
                    .ok_or_else(|| {
                        format!("{outfile:?}: unknown field {{{field}}}; use {{workdir}}, {{step}} or {{step:09d}}")
                    })?;
                out.push_str(&format!("{step:0width$}"));
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(PathBuf::from(out))
}

/// Rows of one array, accumulated over batches.
struct Column {
    array: HostArray,
    rows: Vec<u8>,
    count: usize,
}

impl Save {
    /// The batch features saved as inputs: those named, else every numeric one but `_mask`.
    fn input_keys(&self, batch: &crate::data::Batch) -> Result<Vec<String>, TrainError> {
        match &self.inputs {
            Some(keys) => {
                for k in keys {
                    match batch.data.get(k) {
                        Some(v @ Value::Bytes(_)) => {
                            let e = TrainError::FeatureType {
                                key: k.clone(),
                                holds: v.dtype(),
                                want: "numbers (an npz cannot hold byte strings)",
                            };
                            return Err(TrainError::at(format!("evals.{}.inputs", self.name), e));
                        }
                        Some(_) => {}
                        None => {
                            let e = TrainError::MissingFeature {
                                key: k.clone(),
                                have: batch.data.keys().cloned().collect(),
                            };
                            return Err(TrainError::at(format!("evals.{}.inputs", self.name), e));
                        }
                    }
                }
                Ok(keys.clone())
            }
            None => Ok(batch
                .data
                .iter()
                .filter(|(k, v)| *k != "_mask" && !matches!(v, Value::Bytes(_)))
                .map(|(k, _)| k.clone())
                .collect()),
        }
    }
}

impl Evaluator for Save {
    fn run(&mut self, params: &DeviceParams, step: u64) -> Result<Vec<(String, f64)>, TrainError> {
        let mut columns: BTreeMap<String, Column> = BTreeMap::new();
        for batch in super::batches(&self.data)? {
            let batch = batch?;
            let keys = self.input_keys(&batch)?;
            let x = super::to_device(&batch, "image", &self.mesh)?;
            let mask = super::to_device(&batch, "_mask", &self.mesh)?;
            let inputs = keys
                .iter()
                .map(|k| Ok((k.clone(), super::to_device(&batch, k, &self.mesh)?)))
                .collect::<Result<BTreeMap<String, Array>, TrainError>>()?;
            let (outs, ins, mask) = self.predict.call(&(params.clone(), x, inputs, mask))?;
            self.outputs
                .check(&format!("evals.{}.outputs", self.name))?;
            if !self.writes {
                continue;
            }
            let mask = mask.to_vec::<u8>()?;
            let named = outs
                .into_iter()
                .map(|(k, a)| (format!("outputs/{k}"), a))
                .chain(ins.into_iter().map(|(k, a)| (format!("inputs/{k}"), a)));
            for (key, a) in named {
                let host = HostArray::from_bytes(a.dtype(), a.shape(), a.to_bytes()?)?;
                let row = host.bytes().len() / mask.len().max(1);
                let col = columns.entry(key).or_insert_with(|| Column {
                    array: host.clone(),
                    rows: Vec::new(),
                    count: 0,
                });
                for (i, m) in mask.iter().enumerate() {
                    if *m != 0 {
                        col.rows
                            .extend_from_slice(&host.bytes()[i * row..(i + 1) * row]);
                        col.count += 1;
                    }
                }
            }
        }
        if !self.writes {
            return Ok(Vec::new());
        }
        let path = outfile_path(&self.outfile, &self.workdir, step)
            .map_err(|e| TrainError::setting(format!("evals.{}.outfile", self.name), e))?;
        let mut arrays = Vec::new();
        for (key, col) in columns {
            let mut shape = col.array.shape().to_vec();
            shape[0] = col.count;
            arrays.push((
                key,
                HostArray::from_bytes(col.array.dtype(), &shape, col.rows)?,
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| TrainError::File {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let tmp = path.with_extension("npz.tmp");
        write_npz(
            &tmp,
            arrays.iter().map(|(k, a)| (k, a)),
            Compression::Deflated,
        )?;
        std::fs::rename(&tmp, &path).map_err(|source| TrainError::File { path, source })?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outfile_fields_are_filled_in() {
        let w = std::path::Path::new("/w");
        let p = outfile_path("{workdir}/pred-{step:09d}.npz", w, 42).unwrap();
        assert_eq!(p, PathBuf::from("/w/pred-000000042.npz"));
        assert_eq!(outfile_path("x{step}", w, 7).unwrap(), PathBuf::from("x7"));
        let e = outfile_path("{work}/x.npz", w, 1).unwrap_err();
        assert!(e.contains("unknown field {work}"), "{e}");
    }
}
