//! `bv-train eval --config FILE --workdir DIR [--checkpoint PATH] [--set KEY=VALUE]...`.

use crate::error::TrainError;
use std::path::PathBuf;

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

impl EvalCmd {
    /// Runs the evaluators and prints `name: value` per metric.
    pub fn run(self) -> Result<(), TrainError> {
        if let Some(n) = self.cpu_devices {
            bv_core::set_default_client(bv_core::pjrt::Client::cpu_with_devices(n as usize)?);
        }
        let args = crate::eval::EvalArgs {
            config: self.config,
            workdir: self.workdir.clone(),
            checkpoint: self.checkpoint,
            overrides: self.overrides,
            data_dir: self.data_dir,
        };
        let summary = crate::eval::evaluate(&args)?;
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
}
