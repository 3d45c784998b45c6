//! Evaluators, as big_vision's `evaluators/`: each runs a jitted function of the parameters
//! over an eval pipeline (ordered, padded, with a `_mask`) and yields `(key, value)`
//! metrics that the trainer reports as `<prefix><key>`. [`TYPES`] is the registry by the
//! config's `type`; [`from_config`] builds every evaluator of a config.

pub mod classification;
pub mod distance;
pub mod fewshot_lsr;
pub mod image_text;
pub mod mean;
pub mod save;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bv_core::sharding::{Mesh, PartitionSpec};
use bv_core::tree::Params;
use bv_core::{Array, Tensor};
use bv_nn::models::proj::image_text::two_towers::TwoTowers;
use bv_nn::models::ImageModel;

use crate::config::{Config, Data, Eval, EvalPlan};
use crate::data::{self, Batch, EvalConfig};
use crate::error::TrainError;
use crate::pp::{Pipeline, OPS};
use crate::trainers::{Predict, PredictFn};

/// Parameters on devices, by name.
pub type DeviceParams = Params<Array>;

/// One evaluator, built once and run whenever it is due.
pub trait Evaluator {
    /// Evaluates `params` (the state after training step `step`); metrics by key, without
    /// the prefix.
    fn run(&mut self, params: &DeviceParams, step: u64) -> Result<Vec<(String, f64)>, TrainError>;
}

/// What evaluators are built from: the run's model, mesh and defaults.
pub struct Context<'a> {
    /// The whole config (defaults: `input.data`, `input.pp`, `input.batch_size`, `loss`).
    pub config: &'a Config,
    /// The model whose `apply` evaluators call.
    pub model: Arc<dyn ImageModel>,
    /// The two-tower model image-text evaluators call (`None` unless the trainer has one).
    pub towers: Option<Arc<TwoTowers>>,
    /// The trainer's predict functions by name (`pred`), the default first.
    pub predict_fns: Vec<(String, PredictFn)>,
    /// The trainer's fixed (teacher) parameters, which some predict functions read.
    pub fixed: Arc<DeviceParams>,
    /// The mesh; eval batches are split over its first axis.
    pub mesh: Mesh,
    /// Where prepared datasets live.
    pub data_dir: Option<PathBuf>,
    /// Preprocessing threads.
    pub threads: usize,
    /// This process's index and the number of processes.
    pub process: (usize, usize),
    /// The run's workdir (`save` writes there).
    pub workdir: PathBuf,
}

/// A builder of one evaluator type: `(name in config.evals, its config, context)`.
type Build = fn(&str, &Eval, &Context) -> Result<Box<dyn Evaluator>, TrainError>;

/// An evaluator type: its `type` name, the keys it reads besides the common ones (`type`,
/// `log_*`, `skip_first`, `prefix`, `batch_size`, `cache`, `pred`), and its builder.
pub struct Type {
    /// The config's `type`.
    pub name: &'static str,
    /// The keys it reads besides the common ones.
    pub keys: &'static [&'static str],
    build: Build,
}

/// The evaluator types, by `type`.
pub const TYPES: &[Type] = &[
    Type {
        name: "classification",
        keys: &["data", "pp_fn", "loss_name", "label_key"],
        build: classification::build,
    },
    Type {
        name: "fewshot_lsr",
        keys: &[
            "datasets",
            "shots",
            "l2_reg",
            "l2_regs",
            "pp_train",
            "pp_eval",
            "display_first",
            "representation_layer",
            "num_seeds",
            "label_key",
        ],
        build: fewshot_lsr::build,
    },
    Type {
        name: "mean",
        keys: &["data", "pp_fn", "loss_name", "label_key"],
        build: mean::build,
    },
    Type {
        name: "proj.image_text.discriminative_classifier",
        keys: &[
            "dataset_names",
            "data_dir",
            "class_names",
            "split",
            "prompt_templates",
            "canonicalize",
            "pp_img",
            "pp_txt",
            "cache_final",
            "first_class_name_only",
            "dataset_overrides",
        ],
        build: image_text::discriminative_classifier::build,
    },
    Type {
        name: "proj.image_text.retrieval",
        keys: &[
            "dataset",
            "data_dir",
            "split",
            "pp_img",
            "pp_txt",
            "txt_name",
            "cache_final",
        ],
        build: image_text::retrieval::build,
    },
    Type {
        name: "proj.image_text.contrastive",
        keys: &[
            "data",
            "pp_fn",
            "use_global_batch",
            "cache_final",
            "label_key",
        ],
        build: image_text::contrastive::build,
    },
    Type {
        name: "proj.distill.distance",
        keys: &["data", "pp_fn", "distances", "what", "cache_final"],
        build: distance::build,
    },
    Type {
        name: "save",
        keys: &["data", "pp_fn", "outfile", "outputs", "inputs"],
        build: save::build,
    },
];

/// Keys every evaluator type accepts.
const COMMON_KEYS: &[&str] = &[
    "type",
    "log_steps",
    "log_epochs",
    "log_examples",
    "log_percent",
    "skip_first",
    "prefix",
    "batch_size",
    "cache",
    "pred",
];

/// The names of [`TYPES`].
pub fn type_names() -> Vec<&'static str> {
    TYPES.iter().map(|t| t.name).collect()
}

/// Checks that `evals.<name>` sets only keys its type reads (the type itself is checked
/// by the plan); the error is the key's path and a message naming the keys the type takes.
pub fn check_keys(name: &str, cfg: &Eval) -> Result<(), (String, String)> {
    let Some(t) = TYPES.iter().find(|t| t.name == cfg.kind) else {
        return Ok(());
    };
    let tree = serde_json::to_value(cfg).expect("an eval config serializes to JSON");
    let set = tree
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k);
    for key in set {
        if !COMMON_KEYS.contains(&key.as_str()) && !t.keys.contains(&key.as_str()) {
            return Err((
                format!("evals.{name}.{key}"),
                format!(
                    "not a key of {} evaluators; they take {}",
                    t.name,
                    t.keys.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// An evaluator with its cadence and metric prefix.
pub struct Scheduled {
    /// When it runs and under which prefix.
    pub plan: EvalPlan,
    /// The evaluator its `type` built.
    pub evaluator: Box<dyn Evaluator>,
}

/// Builds every evaluator of `config.evals` (in name order, as the plan lists them; the
/// plan has checked their types and keys).
pub fn from_config(plans: &[EvalPlan], ctx: &Context) -> Result<Vec<Scheduled>, TrainError> {
    let mut out = Vec::new();
    for plan in plans {
        let cfg = &ctx.config.evals[&plan.name];
        let t = TYPES.iter().find(|t| t.name == cfg.kind).ok_or_else(|| {
            TrainError::unknown(
                format!("evals.{}.type", plan.name),
                "evaluator type",
                &cfg.kind,
                &type_names(),
            )
        })?;
        out.push(Scheduled {
            plan: plan.clone(),
            evaluator: (t.build)(&plan.name, cfg, ctx)?,
        });
    }
    Ok(out)
}

impl Context<'_> {
    /// The ordered, padded eval pipeline of `data` (default: the training data) under the
    /// pp string `pp` (default: the training pp), as big_vision's `eval_input_pipeline`.
    pub fn pipeline(
        &self,
        name: &str,
        cfg: &Eval,
        data: Option<&Data>,
        pp: Option<&str>,
    ) -> Result<EvalConfig, TrainError> {
        let data = data.unwrap_or(&self.config.input.data);
        let pp = pp.unwrap_or(&self.config.input.pp);
        let at = |e| TrainError::at(format!("evals.{name}"), e);
        let ds = crate::train::open_dataset(&data.name, self.data_dir.as_deref()).map_err(at)?;
        let pp = Pipeline::build(pp, OPS).map_err(|e| at(e.into()))?;
        Ok(EvalConfig {
            dataset: ds,
            split: data.split.clone(),
            pp: Arc::new(pp),
            batch_size: crate::train::local_batch_size(self.batch_size(cfg), &self.mesh)?,
            threads: self.threads,
            host_index: self.process.0,
            host_count: self.process.1,
        })
    }

    /// The evaluator's global batch size (default: the training batch size).
    pub fn batch_size(&self, cfg: &Eval) -> usize {
        cfg.batch_size.unwrap_or(self.config.input.batch_size) as usize
    }

    /// The loss evaluator `name` reports: its `loss_name`, else the config's `loss`.
    pub fn loss_name(&self, name: &str, cfg: &Eval) -> Result<String, TrainError> {
        let loss = cfg
            .loss_name
            .clone()
            .or_else(|| self.config.loss.clone())
            .unwrap_or_else(|| "sigmoid_xent".into());
        if !crate::losses::NAMES.contains(&loss.as_str()) {
            return Err(TrainError::unknown(
                format!("evals.{name}.loss_name"),
                "loss",
                &loss,
                &crate::losses::NAMES,
            ));
        }
        Ok(loss)
    }
}

/// A batch feature on `mesh`, split over its first axis.
pub fn to_device(batch: &Batch, key: &str, mesh: &Mesh) -> Result<Array, TrainError> {
    crate::train::to_array(batch, key, mesh, &mesh.axes()[0].0)
}

/// Checks `evals.<name>.pred`: the evaluator type calls only the predict fns in `allowed`
/// (big_vision's train.py offers `predict`, the logits and `out`, and `loss`).
pub fn check_pred(name: &str, cfg: &Eval, allowed: &[&str]) -> Result<String, TrainError> {
    let pred = cfg.pred.clone().unwrap_or_else(|| allowed[0].to_string());
    if allowed.contains(&pred.as_str()) {
        return Ok(pred);
    }
    Err(TrainError::setting(
        format!("evals.{name}.pred"),
        format!(
            "{} evaluators call {}, not {pred:?}",
            cfg.kind,
            allowed.join(" or ")
        ),
    ))
}

impl Context<'_> {
    /// The predict function `evals.<name>.pred` names (default: the trainer's first),
    /// which must be one model's.
    pub fn single(&self, name: &str, cfg: &Eval) -> Result<Predict, TrainError> {
        match self.predict_fn(name, cfg)? {
            PredictFn::Single(p) => Ok(p),
            PredictFn::Pair(..) => Err(TrainError::setting(
                format!("evals.{name}.pred"),
                format!(
                    "{:?} is a (student, teacher) pair; {} evaluators call one model's predict \
                     function",
                    cfg.pred.as_deref().unwrap_or_default(),
                    cfg.kind
                ),
            )),
        }
    }

    /// The predict function `evals.<name>.pred` names, of any kind.
    pub fn predict_fn(&self, name: &str, cfg: &Eval) -> Result<PredictFn, TrainError> {
        let names: Vec<&str> = self.predict_fns.iter().map(|(n, _)| n.as_str()).collect();
        let want = cfg.pred.as_deref().unwrap_or(names[0]);
        // `predict` names the default wherever big_vision's train.py would offer it.
        let want = if want == "predict" && !names.contains(&"predict") {
            names[0]
        } else {
            want
        };
        self.predict_fns
            .iter()
            .find(|(n, _)| n == want)
            .map(|(_, f)| f.clone())
            .ok_or_else(|| {
                TrainError::setting(
                    format!("evals.{name}.pred"),
                    format!(
                        "{} evaluators call {}, not {want:?} (the trainer's predict functions)",
                        cfg.kind,
                        names.join(" or ")
                    ),
                )
            })
    }
}

/// Every output of a jitted eval function is replicated, so each process reads all of it
/// (big_vision's `out_shardings=P()`).
pub fn replicated(_: &str, _: &bv_core::Aval) -> PartitionSpec {
    PartitionSpec::replicated()
}

/// `model.apply` in eval mode on the parameters as a jitted function receives them.
pub fn apply(
    model: &dyn ImageModel,
    params: Params,
    image: &Tensor,
) -> (Tensor, bv_nn::models::Out) {
    model.apply(&params, image, false, &[])
}

/// The batches of an eval pipeline, each checked.
pub fn batches(
    cfg: &EvalConfig,
) -> Result<impl Iterator<Item = Result<Batch, TrainError>>, TrainError> {
    Ok(data::eval(cfg)?.map(|b| b.map_err(TrainError::from)))
}

/// A jitted per-batch sum over the unpadded examples: `(params, image, labels, mask) ->
/// (hits, loss, count)`.
pub type SumsFn = bv_core::Jit<(), (Params, Tensor, Tensor, Tensor), (Tensor, Tensor, Tensor)>;

/// `sums` over every batch of `data` (its `image`, `label_key` and padding mask), added up in
/// float64: `(hits, loss, count)`.
pub fn sum_batches(
    sums: &SumsFn,
    params: &DeviceParams,
    data: &EvalConfig,
    mesh: &Mesh,
    label_key: &str,
) -> Result<(f64, f64, f64), TrainError> {
    let (mut hits, mut loss, mut count) = (0.0, 0.0, 0.0);
    for batch in batches(data)? {
        let batch = batch?;
        let x = to_device(&batch, "image", mesh)?;
        let y = to_device(&batch, label_key, mesh)?;
        let mask = to_device(&batch, "_mask", mesh)?;
        let (h, l, n) = sums.call(&(params.clone(), x, y, mask))?;
        hits += f64::from(h.item::<f32>()?);
        loss += f64::from(l.item::<f32>()?);
        count += f64::from(n.item::<f32>()?);
    }
    Ok((hits, loss, count))
}

/// Which model outputs a jitted eval function returns: `logits` or any name of the
/// model's `out` (`pre_logits`, ...). Names are checked while tracing, where no error can
/// be returned, so a missing one is noted here and reported after the call.
pub struct Outputs {
    names: Vec<String>,
    missing: std::sync::Mutex<Option<String>>,
}

impl Outputs {
    /// The outputs `names`, to share between an evaluator and its traced function.
    pub fn new(names: Vec<String>) -> Arc<Outputs> {
        Arc::new(Outputs {
            names,
            missing: Default::default(),
        })
    }

    /// The requested outputs of one traced `apply`; a missing name is noted and given as
    /// the logits.
    pub fn pick(&self, logits: &Tensor, out: &bv_nn::models::Out) -> BTreeMap<String, Tensor> {
        let mut picked = BTreeMap::new();
        for name in &self.names {
            let t = match (name.as_str(), out.get(name)) {
                (_, Some(t)) => t.clone(),
                ("logits", None) => logits.clone(),
                (_, None) => {
                    let mut have: Vec<&str> =
                        std::iter::once("logits").chain(out.names()).collect();
                    have.sort_unstable();
                    have.dedup();
                    *self.missing.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                        "the model has no output {name:?}; it has {}",
                        have.join(", ")
                    ));
                    logits.clone()
                }
            };
            picked.insert(name.clone(), t);
        }
        picked
    }

    /// The error for a name the model does not have, under config key `key`.
    pub fn check(&self, key: &str) -> Result<(), TrainError> {
        match self
            .missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(msg) => Err(TrainError::setting(key, msg)),
            None => Ok(()),
        }
    }
}
