//! `bv-train eval`: runs a config's evaluators on a checkpoint, without training. The
//! parameters come from the checkpoint (default: the one `checkpoint.bv-LAST` of the
//! workdir points at), laid out by the config's `sharding_strategy`; every evaluator runs
//! once, whatever its cadence, and its metrics are printed and appended to the workdir's
//! `big_vision_metrics.txt` as a line for the checkpoint's step. The checkpoint is only
//! read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use bv_core::sharding::Mesh;

use crate::checkpoint;
use crate::config::{check_batch_divisible, check_location, Config, Plan};
use crate::error::TrainError;
use crate::evals::{self, DeviceParams};
use crate::metrics::MetricWriter;
use crate::train::{open_dataset, place};

/// What `bv-train eval` is asked to do.
#[derive(Clone, Debug)]
pub struct EvalArgs {
    /// The RON config (its `evals`, model and sharding are used).
    pub config: PathBuf,
    /// The workdir: its LAST checkpoint is the default, its metrics file gets the line.
    pub workdir: PathBuf,
    /// A checkpoint folder (`.../checkpoint.bv-000001000`) instead of the workdir's LAST.
    pub checkpoint: Option<PathBuf>,
    /// `key.path=value` overrides.
    pub overrides: Vec<String>,
    /// Where prepared TFDS datasets live (default: `$TFDS_DATA_DIR`).
    pub data_dir: Option<PathBuf>,
}

/// The checkpoint's step and every metric, by full name (`<prefix><key>`).
#[derive(Clone, Debug, Default)]
pub struct EvalSummary {
    pub step: u64,
    pub metrics: BTreeMap<String, f64>,
}

/// Evaluates a checkpoint with the config's evaluators.
pub fn evaluate(args: &EvalArgs) -> Result<EvalSummary, TrainError> {
    let config = Config::load(&args.config, &args.overrides)?;
    config.validate()?;
    check_location("--workdir", &args.workdir)?;
    if let Some(d) = &args.data_dir {
        check_location("--data-dir", d)?;
    }
    if config.evals.is_empty() {
        return Err(format!("{}: the config has no evals", args.config.display()).into());
    }
    let dir = match &args.checkpoint {
        Some(dir) => dir.clone(),
        None => checkpoint::last_dir(&args.workdir)?.ok_or_else(|| {
            format!(
                "{} has no checkpoint (no checkpoint.bv-LAST); train first with \
                 `bv-train --config {} --workdir {}`, or give --checkpoint PATH",
                args.workdir.display(),
                args.config.display(),
                args.workdir.display()
            )
        })?,
    };
    let client = bv_core::default_client()?;
    let devices: Vec<i64> = client
        .addressable_devices()
        .iter()
        .map(|d| i64::from(d.id()))
        .collect();
    for (name, e) in &config.evals {
        let bs = e.batch_size.unwrap_or(config.input.batch_size);
        check_batch_divisible(bs, devices.len() as u64)
            .map_err(|err| format!("evals.{name}.batch_size: {err}"))?;
    }
    let data_dir = args
        .data_dir
        .clone()
        .or(config.input.data.data_dir.as_ref().map(PathBuf::from));
    let data_size: u64 = open_dataset(&config.input.data.name, data_dir.as_deref())?
        .ranges(&config.input.data.split)?
        .iter()
        .map(|r| r.len())
        .sum();
    let plan = Plan::new(&config, data_size)?;

    let mesh_axes = config
        .mesh
        .clone()
        .unwrap_or_else(|| vec![("data".into(), -1)]);
    let axes: Vec<(&str, i64)> = mesh_axes.iter().map(|(a, s)| (a.as_str(), *s)).collect();
    let mesh = Mesh::new(&axes, &devices)?;
    let strategy = config
        .sharding_strategy
        .clone()
        .unwrap_or_else(|| vec![(".*".into(), "replicate()".into())]);
    let (model, towers) = crate::trainers::eval_models(&config)?;

    let ckpt = checkpoint::load(&dir)?;
    let mut params = DeviceParams::new();
    for (name, h) in &ckpt.leaves {
        if let Some(rest) = name.strip_prefix("params/") {
            params.insert(
                rest.to_string(),
                place(h, "params", rest, &mesh, &strategy)?,
            );
        }
    }
    if params.is_empty() {
        return Err(format!("{}: the checkpoint holds no params/ leaves", dir.display()).into());
    }

    let predict = crate::trainers::Predict::trained(model.clone());
    let ctx = evals::Context {
        config: &config,
        model,
        towers,
        predict_fns: vec![(
            "predict".into(),
            crate::trainers::PredictFn::Single(predict),
        )],
        fixed: Default::default(),
        mesh,
        data_dir,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        process: (0, 1),
        workdir: args.workdir.clone(),
    };
    let mut evaluators = evals::from_config(&plan.evals, &ctx)?;
    crate::workdir::create_dir(&args.workdir)?;
    // Every line is kept: this run only appends one.
    let mut metrics = MetricWriter::open(&args.workdir, Some(u64::MAX))?;
    metrics.step_start(ckpt.step);
    let mut summary = EvalSummary {
        step: ckpt.step,
        ..EvalSummary::default()
    };
    for evals::Scheduled { plan: e, evaluator } in &mut evaluators {
        let t = Instant::now();
        for (k, v) in evaluator.run(&params, ckpt.step)? {
            let key = format!("{}{k}", e.prefix);
            metrics.measure(&key, v);
            summary.metrics.insert(key, v);
        }
        metrics.measure(
            &format!("z/secs/eval/{}", e.name),
            t.elapsed().as_secs_f64(),
        );
    }
    metrics.step_end()?;
    Ok(summary)
}
