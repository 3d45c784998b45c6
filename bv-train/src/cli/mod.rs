//! The `bv-train` command line: one module per subcommand group.

pub mod config;
pub mod data;
pub mod eval;
pub mod export;
pub mod plot;
pub mod pp;

use crate::error::TrainError;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::bundled::BUNDLED;

/// big_vision's trainer, in Rust.
///
/// Train (or resume: a workdir with checkpoints continues where it stopped):
///
///   bv-train --config configs/fashion_mnist_vit.ron --workdir workdirs/fmnist
///
///   bv-train --config vit_s16_i1k.ron --workdir W --data-dir /data/tfds --set input.batch_size=256 --set lr=0.0005
///
/// `--config` takes a file, or the name of a config bundled in the binary (listed below;
/// `bv-train config --list` describes them). Then `bv-train plot W` draws the curves and
/// `bv-train eval --config FILE --workdir W` evaluates the latest checkpoint;
/// `bv-train config FILE` checks a config first, and `bv-train pp --list` shows the pp ops.
#[derive(Debug, Parser)]
#[command(
    name = "bv-train",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do besides training.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The training run (when no subcommand is given).
    #[command(flatten)]
    pub train: TrainFlags,
}

/// The flags of a training run.
#[derive(Debug, clap::Args)]
pub struct TrainFlags {
    /// The config file (RON, big_vision's keys), e.g. configs/fashion_mnist_vit.ron.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The work directory: checkpoints, big_vision_metrics.txt and config.json go here.
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Override a config key by its dotted path, e.g. --set input.batch_size=64 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Where prepared TFDS datasets live (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Virtual CPU devices to train on (CPU plugin only; default 1).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub cpu_devices: Option<u64>,
    /// Stop after this step (a later run resumes from the checkpoint written there).
    #[arg(long, value_name = "STEP", value_parser = at_least_one)]
    pub stop_after: Option<u64>,
    /// Multi-process jobs: where process 0 serves the coordination service (HOST:PORT).
    /// Without these three flags, BV_COORDINATOR/BV_NUM_PROCESSES/BV_PROCESS_ID or Cloud
    /// TPU's TPU_WORKER_HOSTNAMES/TPU_WORKER_ID are used, else the job is one process.
    #[arg(long, requires_all = ["num_processes", "process_id"])]
    pub coordinator: Option<String>,
    /// Multi-process jobs: the number of processes.
    #[arg(long, value_parser = at_least_one)]
    pub num_processes: Option<u64>,
    /// Multi-process jobs: this process's index (0 writes metrics and checkpoints).
    #[arg(long)]
    pub process_id: Option<usize>,
    /// Multi-process jobs on a plugin without collectives across processes (the CPU
    /// plugins): let each process train a replica of its own on its share of the data
    /// (otherwise refused, since it is rarely what was meant).
    #[arg(long)]
    pub allow_independent_replicas: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare and inspect datasets in the TFDS format.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Check a config and print the resolved run (steps, schedules, cadence).
    Config(config::ConfigArgs),
    /// Run a config's evaluators on a checkpoint (default: the workdir's latest), without
    /// training.
    Eval(eval::EvalCmd),
    /// Write a checkpoint's parameters as a big_vision .npz (for model_init).
    Export(export::ExportArgs),
    /// Draw the loss, schedule and eval curves of a workdir to an SVG or PNG file.
    Plot(plot::PlotArgs),
    /// List the pp ops with their arguments, describe one, or check a pp string.
    Pp(pp::PpArgs),
}

/// A count flag that must be positive (`--cpu-devices 0` is an error naming the flag).
pub fn at_least_one(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The `--help` text after the flags: the bundled configs.
fn bundled_help() -> String {
    let mut s =
        String::from("Bundled configs (by name from any directory; a file at that path wins):\n");
    for b in BUNDLED {
        s.push_str(&format!("  {}\n", b.name));
    }
    s
}

impl Cli {
    /// Parses the process's arguments (`--help` lists the bundled configs).
    pub fn parse_args() -> Cli {
        let matches = Cli::command().after_help(bundled_help()).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Runs the chosen subcommand, or trains.
    pub fn run(self) -> Result<(), TrainError> {
        match self.command {
            Some(Command::Data(cmd)) => cmd.run(),
            Some(Command::Plot(args)) => args.run(),
            Some(Command::Config(args)) => args.run(),
            Some(Command::Eval(args)) => args.run(),
            Some(Command::Pp(args)) => args.run(),
            Some(Command::Export(args)) => args.run(),
            None => self.train.run(),
        }
    }
}

impl TrainFlags {
    fn run(self) -> Result<(), TrainError> {
        let (Some(config), Some(workdir)) = (self.config, self.workdir) else {
            return Err(TrainError::TrainFlags);
        };
        crate::stop::install_handlers()?;
        let process = match (&self.coordinator, self.num_processes, self.process_id) {
            (Some(c), Some(n), Some(i)) => {
                bv_core::distributed::ProcessInfo::new(c, n as usize, i)?
            }
            _ => bv_core::distributed::ProcessInfo::from_env()?
                .unwrap_or_else(bv_core::distributed::ProcessInfo::single),
        };
        let args = crate::train::RunArgs {
            process,
            config,
            workdir: workdir.clone(),
            overrides: self.overrides,
            data_dir: self.data_dir,
            stop_after: self.stop_after,
            cpu_devices: self.cpu_devices.map(|n| n as usize),
            allow_independent_replicas: self.allow_independent_replicas,
        };
        let summary = crate::train::run(&args)?;
        match summary.training_loss {
            Some(loss) => println!("step {}: training_loss {loss:.4}", summary.step),
            None => println!("step {}", summary.step),
        }
        for (k, v) in &summary.evals {
            println!("{k}: {v:.4}");
        }
        println!(
            "metrics in {}; draw them with: bv-train plot {}",
            workdir.join("big_vision_metrics.txt").display(),
            workdir.display()
        );
        Ok(())
    }
}
