//! Training configs: RON files with big_vision's keys, parsed into plain structs
//! ([`Config`]), overridden from the command line by dotted path, and resolved into a
//! [`Plan`] in which every `*_steps/_epochs/_examples/_percent` is a step count.
//!
//! ```
//! use bv_train::config::{Config, Plan};
//! let text = r#"(
//!     total_epochs: 2, num_classes: 10, loss: "softmax_xent",
//!     input: (data: (name: "fashion_mnist", split: "train"), batch_size: 100, pp: "keep(\"image\")"),
//!     model_name: "vit", optax_name: "scale_by_adam", lr: 0.001,
//!     schedule: (decay_type: "cosine", warmup_percent: 0.1),
//! )"#;
//! let config = Config::from_str(text, "inline.ron", &[]).unwrap();
//! let plan = Plan::new(&config, 60_000).unwrap();
//! assert_eq!(plan.total_steps, 1200);
//! ```

pub mod bundled;
mod error;
mod load;
mod plan;
mod steps;
mod validate;

pub use error::ConfigError;
pub use load::ron_options;
pub use plan::{check_batch_divisible, EvalPlan, Plan, PlanError};
pub use steps::{itstime, Lengths, StepsError};
pub use validate::check_location;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::optim::schedule::ScheduleSpec;

/// A free-form dict passed through unchanged (`model`, `optax`, `model_load`, ...).
pub type Dict = BTreeMap<String, serde_json::Value>;

/// A whole training config; field names are big_vision's config keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// PRNG seed (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Length of the run: exactly one of the three.
    pub total_steps: Option<f64>,
    pub total_epochs: Option<f64>,
    pub total_examples: Option<f64>,
    /// Number of classes of the model's head.
    pub num_classes: Option<u64>,
    /// `softmax_xent` or `sigmoid_xent` (big_vision's default).
    pub loss: Option<String>,
    /// The training input pipeline.
    pub input: Input,
    /// Log training metrics every so often (at most one of the four).
    pub log_training_steps: Option<f64>,
    pub log_training_epochs: Option<f64>,
    pub log_training_examples: Option<f64>,
    pub log_training_percent: Option<f64>,
    /// Write a (rotated, `-tmp`) checkpoint every so often.
    pub ckpt_steps: Option<f64>,
    pub ckpt_epochs: Option<f64>,
    pub ckpt_examples: Option<f64>,
    pub ckpt_percent: Option<f64>,
    /// Keep the checkpoint every so often (default: the end of the run when ckpt_* is set).
    pub keep_ckpt_steps: Option<f64>,
    pub keep_ckpt_epochs: Option<f64>,
    pub keep_ckpt_examples: Option<f64>,
    pub keep_ckpt_percent: Option<f64>,
    /// The trainer, by big_vision's module name: `train` (default) or
    /// `proj.image_text.siglip` (bv's key; big_vision picks the module on the command line).
    pub trainer: Option<String>,
    /// The model module: `vit`, `mlp_mixer`, `bit`, `bit_paper`, `proj.flexi.vit`,
    /// `proj.image_text.two_towers` (the distillation trainers name `student_name` instead).
    #[serde(default)]
    pub model_name: String,
    /// Shapes of the model's inputs at init (the SigLIP trainer: image and text).
    pub init_shapes: Option<Vec<Vec<u64>>>,
    /// Their dtypes (`float32`, `int32`).
    pub init_types: Option<Vec<String>>,
    /// The SigLIP trainer's loss: `sigmoid` (default) or `softmax` (LiT/CLIP).
    pub loss_fn: Option<String>,
    /// Keyword arguments of the model (`variant`, `pool_type`, `posemb`, ...).
    #[serde(default)]
    pub model: Dict,
    /// Initialize parameters from this `.npz` instead of from scratch; a two-tower model
    /// also takes a vanity name or a map of parts (`{img: ..., txt: ...}`).
    pub model_init: Option<serde_json::Value>,
    /// Keyword arguments of the model's `load` (`dont_load: [...]`, ...).
    #[serde(default)]
    pub model_load: Dict,
    /// Resume from this checkpoint when the workdir has none.
    pub resume: Option<String>,
    /// Fill the head's bias with this value at init.
    pub init_head_bias: Option<f64>,
    /// Clip gradients to this global norm.
    pub grad_clip_norm: Option<f64>,
    /// The optimizer core: `scale_by_adam`, `big_vision.momentum_hp`,
    /// `big_vision.scale_by_adafactor`, `big_vision.sgd`, `identity`.
    pub optax_name: String,
    /// Keyword arguments of the optimizer core (`mu_dtype`, `b1`, `momentum`, ...).
    #[serde(default)]
    pub optax: Dict,
    /// Learning rate.
    pub lr: f64,
    /// Decoupled weight decay (multiplied by the schedule, not by lr).
    pub wd: Option<f64>,
    /// `[(regex, mult)]`: which parameters decay (default `[(".*/kernel$", 1.0)]`).
    pub wd_mults: Option<Vec<(String, f64)>>,
    /// `[(regex, mult)]`: extra learning-rate factors.
    pub lr_mults: Option<Vec<(String, f64)>>,
    /// One schedule, or a list of `(regex, schedule or None)`; None freezes the group.
    pub schedule: Option<ScheduleConfig>,
    /// Mixup (`p` > 0 enables it).
    pub mixup: Option<Mixup>,
    /// Distillation: the student's model module (as `model_name`).
    pub student_name: Option<String>,
    /// Distillation: the student's model keyword arguments (as `model`).
    pub student: Option<Dict>,
    /// Distillation: the student's initial parameters (as `model_init`).
    pub student_init: Option<serde_json::Value>,
    /// Distillation: the student loader's keyword arguments (as `model_load`).
    pub student_load: Option<Dict>,
    /// Distillation: the teachers by name; big_vision's `teachers = [name]` with
    /// `<name>_name`, `<name>`, `<name>_init`, `<name>_load`.
    pub teachers: Option<BTreeMap<String, Teacher>>,
    /// Distillation: the distance of student and teacher logits (`kl`, `euclidean`, ...).
    pub distance: Option<String>,
    /// Distillation: the distance's keyword arguments (`t` for `kl`).
    pub distance_kw: Option<Dict>,
    /// FlexiViT: the model arguments sampled per step, `{seqhw: (v: [...], p: [...])}`.
    pub flexi: Option<BTreeMap<String, FlexiArg>>,
    /// GSAM/SAM settings (`rho_max`, `rho_min`, `alpha`, `lr_max`, `lr_min`, ...).
    pub gsam: Option<Dict>,
    /// Evaluators by name.
    #[serde(default)]
    pub evals: BTreeMap<String, Eval>,
    /// Device mesh `[(axis, size)]`, -1 for the rest (default `[("data", devices)]`).
    pub mesh: Option<Vec<(String, i64)>>,
    /// Allow mesh axes that split physical axes: only `true` (bv's meshes are in device-id
    /// order, without a topology mapping that could promise otherwise).
    pub mesh_allow_split_physical_axes: Option<bool>,
    /// `[(regex, tactic)]` sharding of parameters and optimizer state.
    pub sharding_strategy: Option<Vec<(String, String)>>,
    /// Logical axis rules `[(logical, mesh axis or axes)]`: only `("act_batch", <the
    /// mesh's first axis>)`, as bv's models have no logical-axis constraints.
    pub sharding_rules: Option<Vec<(String, serde_json::Value)>>,
    /// Batches put on devices ahead of the step (default 1).
    pub prefetch_to_device: Option<u64>,
    /// big_vision's pp modules whose ops pp strings may use (default `ops_general`,
    /// `ops_image`, `ops_text`, as train.py).
    pub pp_modules: Option<Vec<String>>,
}

/// `config.input`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The dataset.
    pub data: Data,
    /// Global batch size.
    pub batch_size: u64,
    /// Examples in the shuffle buffer (per host).
    pub shuffle_buffer_size: Option<u64>,
    /// The preprocessing pipeline string (`decode|resize(224)|...`).
    pub pp: String,
    /// Batches prepared ahead on the host.
    pub prefetch: Option<u64>,
    /// Cache the raw (encoded) examples in memory: only `false`, as bv leaves that to the
    /// page cache of the local files it reads.
    pub cache_raw: Option<bool>,
}

/// A dataset: a TFDS name and split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// TFDS name (`imagenet2012`, `fashion_mnist`, ...).
    pub name: String,
    /// TFDS split string (`train[:99%]`).
    pub split: String,
    /// Where the prepared dataset lives (default: the TFDS data directory).
    pub data_dir: Option<String>,
}

/// `config.mixup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mixup {
    /// Beta(p, p) parameter; 0 disables mixup.
    pub p: f64,
    /// Accepted for compatibility; big_vision's train.py ignores it.
    pub fold_in: Option<serde_json::Value>,
}

/// One teacher of a distillation config (`config.teachers.<name>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teacher {
    /// Its model module (big_vision's `<name>_name`).
    pub name: String,
    /// Its model keyword arguments (`<name>`).
    #[serde(default)]
    pub model: Dict,
    /// Its parameters: an `.npz` path or a big_vision checkpoint name (`<name>_init`).
    pub init: serde_json::Value,
    /// Its loader's keyword arguments (`<name>_load`, e.g. `dont_load`).
    #[serde(default)]
    pub load: Dict,
}

/// One flexible model argument of a FlexiViT config (`config.flexi.<arg>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlexiArg {
    /// The values sampled from.
    pub v: Vec<u64>,
    /// Their weights (default uniform).
    pub p: Option<Vec<f64>>,
}

/// One evaluator, `config.evals.<name>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eval {
    /// `classification`, `fewshot_lsr`, `mean` or `save`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The evaluation dataset.
    pub data: Option<Data>,
    /// Its preprocessing pipeline.
    pub pp_fn: Option<String>,
    /// Run every so often (at most one of the four).
    pub log_steps: Option<f64>,
    pub log_epochs: Option<f64>,
    pub log_examples: Option<f64>,
    pub log_percent: Option<f64>,
    /// Loss reported by `classification` (`softmax_xent`, `sigmoid_xent`).
    pub loss_name: Option<String>,
    /// Skip the run before training starts.
    pub skip_first: Option<bool>,
    /// Metric name prefix (default `<name>/`).
    pub prefix: Option<String>,
    /// Batch size (default: the training batch size).
    pub batch_size: Option<u64>,
    /// `none`, `pipeline`, `raw_data` or `final_data`.
    pub cache: Option<String>,
    /// Which prediction function (default `predict`).
    pub pred: Option<String>,
    /// Its keyword arguments.
    pub pred_kw: Option<Dict>,
    /// The label feature (default `labels`).
    pub label_key: Option<String>,
    /// fewshot_lsr: `{name: (tfds, train_split, test_split)}`.
    pub datasets: Option<BTreeMap<String, (String, String, String)>>,
    /// fewshot_lsr: shots per class.
    pub shots: Option<Vec<u64>>,
    /// fewshot_lsr: ridge regularization (default 2^10, as big_vision's common_fewshot).
    pub l2_reg: Option<f64>,
    /// fewshot_lsr: candidate regularizations instead of `l2_reg`; the best per shot count
    /// (by mean rank over datasets and seeds) is reported.
    pub l2_regs: Option<Vec<f64>>,
    /// fewshot_lsr: pipelines for the train and test splits.
    pub pp_train: Option<String>,
    pub pp_eval: Option<String>,
    /// fewshot_lsr: `(dataset, shots)` pairs reported without the `z/` prefix.
    pub display_first: Option<Vec<(String, u64)>>,
    /// fewshot_lsr: the layer the features come from (default `pre_logits`).
    pub representation_layer: Option<String>,
    /// fewshot_lsr: seeds per (dataset, shots).
    pub num_seeds: Option<u64>,
    /// save: the output file (`{workdir}`, `{step}` and `{step:09d}` are filled in).
    pub outfile: Option<String>,
    /// save: the model outputs written (`logits`, `pre_logits`, ...; default `logits`).
    pub outputs: Option<Vec<String>>,
    /// save: the batch features written (default: every numeric feature but `_mask`).
    pub inputs: Option<Vec<String>>,
    /// discriminative_classifier: the datasets to classify zero-shot.
    pub dataset_names: Option<Vec<String>>,
    /// Image-text evaluators: where the datasets live.
    pub data_dir: Option<String>,
    /// discriminative_classifier: `dataset_info:label`, `clip` or a list of names.
    pub class_names: Option<serde_json::Value>,
    /// Image-text evaluators: the split (default `test`).
    pub split: Option<String>,
    /// discriminative_classifier: `clip_paper` (default), `clip_best` or `class_name_only`.
    pub prompt_templates: Option<serde_json::Value>,
    /// discriminative_classifier: canonicalize class names and templates (default true).
    pub canonicalize: Option<bool>,
    /// Image-text evaluators: the image pipeline (after decoding).
    pub pp_img: Option<String>,
    /// Image-text evaluators: the text pipeline (`texts` to tokens in `labels`).
    pub pp_txt: Option<String>,
    /// Image-text evaluators: accepted for compatibility (bv prepares texts once).
    pub cache_final: Option<bool>,
    /// discriminative_classifier: use each class's first alias only (default true).
    pub first_class_name_only: Option<bool>,
    /// discriminative_classifier: per-dataset settings by dataset name.
    pub dataset_overrides: Option<BTreeMap<String, BTreeMap<String, serde_json::Value>>>,
    /// retrieval: the TFDS dataset of images and captions.
    pub dataset: Option<String>,
    /// retrieval: the caption feature (`"captions/text"` or `["captions", "text"]`).
    pub txt_name: Option<serde_json::Value>,
    /// contrastive: one minibatch over all devices (default true) or one per device.
    pub use_global_batch: Option<bool>,
    /// proj.distill.distance: the distances, `[{kind: "kl"}, {kind: "agree", k: 5}]`.
    pub distances: Option<Vec<serde_json::Value>>,
    /// proj.distill.distance: the student and teacher outputs compared (default
    /// `("logits", "logits")`).
    pub what: Option<(String, String)>,
}

/// `config.schedule`: one dict for every parameter, or `[(regex, dict or None)]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ScheduleConfig {
    /// One schedule for all parameters (`.*`).
    One(Box<ScheduleSpec>),
    /// First matching regex wins; `None` freezes the group.
    Groups(Vec<(String, Option<ScheduleSpec>)>),
}

impl<'de> Deserialize<'de> for ScheduleConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ScheduleConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a schedule (decay_type: ..., ...) or a list of (regex, schedule or None)",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                ScheduleSpec::deserialize(serde::de::value::MapAccessDeserializer::new(a))
                    .map(|s| ScheduleConfig::One(Box::new(s)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(a))
                    .map(ScheduleConfig::Groups)
            }
        }
        d.deserialize_any(V)
    }
}
