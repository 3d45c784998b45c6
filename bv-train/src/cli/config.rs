//! `bv-train config FILE [--set KEY=VALUE]...`: check a config and print what it resolves to;
//! `bv-train config --list`: the configs bundled in the binary.

use crate::error::TrainError;
use std::path::PathBuf;

use crate::config::bundled::BUNDLED;
use crate::config::{Config, Plan};
use crate::data::TfdsDataset;

/// Checks a config (keys, types, values, pp strings, overrides, step arithmetic) and prints
/// the resolved run.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    bv-train config --list\n  \
    bv-train config vit_s16_i1k.ron --data-size 1268355\n  \
    bv-train config transfer_cifar10.ron --set lr=0.003 --set input.batch_size=64")]
pub struct ConfigArgs {
    /// The RON config file, or the name of a bundled config (see --list).
    #[arg(required_unless_present = "list")]
    pub config: Option<PathBuf>,
    /// List the configs bundled in the binary, with what each trains.
    #[arg(long, conflicts_with = "config")]
    pub list: bool,
    /// Override a key by its dotted path (repeatable): `lr=0.03`, `model.variant=B/32`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Size of the training split; default: counted from the prepared TFDS dataset.
    #[arg(long)]
    pub data_size: Option<u64>,
    /// Data directory (default: input.data.data_dir, $TFDS_DATA_DIR or ~/tensorflow_datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// Prints the resolved config as JSON, then the plan's step counts.
    pub fn run(self) -> Result<(), TrainError> {
        let Some(path) = self.config else {
            for b in BUNDLED {
                println!("{}\n    {}", b.name, b.summary());
            }
            return Ok(());
        };
        let config = Config::load(&path, &self.overrides)?;
        config.validate()?;
        let data_size = match self.data_size {
            Some(n) => n,
            None => {
                let data = &config.input.data;
                let dir = self.data_dir.or(data.data_dir.as_ref().map(PathBuf::from));
                let ds = TfdsDataset::open(&data.name, dir.as_deref()).map_err(|source| {
                    TrainError::NoDataSize {
                        split: data.split.clone(),
                        source,
                    }
                })?;
                ds.ranges(&data.split)?.iter().map(|r| r.len()).sum()
            }
        };
        let plan = Plan::new(&config, data_size)?;
        println!("{}", config.to_json());
        println!(
            "total_steps: {} ({:.2} epochs of {data_size} examples at batch size {})",
            plan.total_steps,
            plan.epochs(),
            plan.batch_size
        );
        let every = |v: Option<u64>| v.map_or("never".to_string(), |s| format!("every {s} steps"));
        println!("log_training: {}", every(plan.log_training_steps));
        println!(
            "checkpoint: {}, kept {}",
            every(plan.ckpt_steps),
            every(plan.keep_ckpt_steps)
        );
        for (pattern, s) in plan.schedules.groups() {
            match s {
                None => println!("schedule {pattern:?}: frozen"),
                Some(s) => println!(
                    "schedule {pattern:?}: warmup {} steps, cooldown {} steps, multiplier at 0/25/50/75/100%: {:?}",
                    s.warmup_steps,
                    s.cooldown_steps,
                    [0, 1, 2, 3, 4].map(|q| s.at((plan.total_steps * q / 4) as f64))
                ),
            }
        }
        for e in &plan.evals {
            println!(
                "eval {:?}: {} (prefix {:?})",
                e.name,
                every(e.log_steps),
                e.prefix
            );
        }
        Ok(())
    }
}
