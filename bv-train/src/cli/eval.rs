//! `bv-train eval --config FILE --workdir DIR [--checkpoint PATH] [--set KEY=VALUE]...`:
//! runs a config's evaluators on a checkpoint, without training. The parameters come from
//! the checkpoint (default: the one `checkpoint.bv-LAST` of the workdir points at), laid
//! out by the config's `sharding_strategy`; every evaluator runs once, whatever its
//! cadence, and its metrics are printed and appended to the workdir's
//! `big_vision_metrics.txt` as a line for the checkpoint's step. The checkpoint is only
//! read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::checkpoint;
use crate::config::{check_location, Config, Plan};
use crate::error::TrainError;
use crate::evaluators::{self, DeviceParams};
use crate::metrics::MetricWriter;
use crate::train::{check_eval_batch_sizes, make_mesh, open_dataset, place, sharding_strategy};

/// Evaluates a checkpoint with the config's evaluators and appends the metrics.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    bv-train eval --config configs/fashion_mnist_vit.ron --workdir workdirs/fmnist\n  \
    bv-train eval --config C --workdir W --checkpoint W/checkpoint.bv-000001000 --set evals.test.batch_size=100")]
pub struct EvalCmd {
    /// The config file (its evals, model and sharding_strategy are used).
    #[arg(long)]
    pub config: PathBuf,
    /// The work directory: its checkpoint.bv-LAST is evaluated by default, and the metrics
    /// are appended to its big_vision_metrics.txt.
    #[arg(long)]
    pub workdir: PathBuf,
    /// A checkpoint folder to evaluate instead of the workdir's latest.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Override a config key by its dotted path (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Where prepared TFDS datasets live (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Virtual CPU devices to evaluate on (CPU plugin only; default 1).
    #[arg(long, value_name = "N", value_parser = super::at_least_one)]
    pub cpu_devices: Option<u64>,
}

/// The checkpoint's step and every metric, by full name (`<prefix><key>`).
#[derive(Clone, Debug, Default)]
pub struct EvalSummary {
    /// The checkpoint's step.
    pub step: u64,
    /// Every evaluator's metrics, by full name.
    pub metrics: BTreeMap<String, f64>,
}

impl EvalCmd {
    /// Runs the evaluators and prints `name: value` per metric.
    pub fn run(self) -> Result<(), TrainError> {
        if let Some(n) = self.cpu_devices {
            bv_core::set_default_client(bv_core::pjrt::Client::cpu_with_devices(n as usize)?);
        }
        let summary = self.evaluate()?;
        println!("step {}:", summary.step);
        for (k, v) in &summary.metrics {
            println!("{k}: {v:.4}");
        }
        println!(
            "appended to {}",
            self.workdir.join(crate::metrics::METRICS_FILE).display()
        );
        Ok(())
    }

    /// Evaluates the checkpoint with the config's evaluators and appends their metrics to
    /// the workdir's metrics file.
    pub fn evaluate(&self) -> Result<EvalSummary, TrainError> {
        let config = Config::load(&self.config, &self.overrides)?;
        config.validate()?;
        check_location("--workdir", &self.workdir)?;
        if let Some(d) = &self.data_dir {
            check_location("--data-dir", d)?;
        }
        if config.evals.is_empty() {
            return Err(TrainError::NoEvals {
                config: self.config.clone(),
            });
        }
        let dir = match &self.checkpoint {
            Some(dir) => dir.clone(),
            None => {
                checkpoint::last_dir(&self.workdir)?.ok_or_else(|| TrainError::NoCheckpoint {
                    workdir: self.workdir.clone(),
                    config: self.config.clone(),
                })?
            }
        };
        let client = bv_core::default_client()?;
        let devices: Vec<i64> = client
            .addressable_devices()
            .iter()
            .map(|d| i64::from(d.id()))
            .collect();
        check_eval_batch_sizes(&config, devices.len())?;
        let data_dir =
            self.data_dir
                .clone()
                .or(config.input.data.data_dir.as_ref().map(PathBuf::from));
        let data_size: u64 = open_dataset(&config.input.data.name, data_dir.as_deref())?
            .ranges(&config.input.data.split)?
            .iter()
            .map(|r| r.len())
            .sum();
        let plan = Plan::new(&config, data_size)?;

        let mesh = make_mesh(&config, &devices)?;
        let strategy = sharding_strategy(&config);
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
            return Err(TrainError::NoParams { dir });
        }

        let predict = crate::trainers::Predict::trained(model.clone());
        let ctx = evaluators::Context {
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
            workdir: self.workdir.clone(),
        };
        let mut evaluators = evaluators::from_config(&plan.evals, &ctx)?;
        crate::workdir::create_dir(&self.workdir)?;
        // Every line is kept: this run only appends one.
        let mut metrics = MetricWriter::open(&self.workdir, Some(u64::MAX))?;
        metrics.step_start(ckpt.step);
        let mut summary = EvalSummary {
            step: ckpt.step,
            ..EvalSummary::default()
        };
        for evaluators::Scheduled { plan: e, evaluator } in &mut evaluators {
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
}
