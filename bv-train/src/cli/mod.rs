//! The `bv-train` command line: one module per subcommand group.

pub mod config;
pub mod data;
pub mod plot;

use clap::{Parser, Subcommand};

/// big_vision's trainer, in Rust.
#[derive(Debug, Parser)]
#[command(name = "bv-train", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare and inspect datasets in the TFDS format.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Check a config and print the resolved run (steps, schedules, cadence).
    Config(config::ConfigArgs),
    /// Draw the loss, schedule and eval curves of a workdir to an SVG file.
    Plot(plot::PlotArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        match self.command {
            Command::Data(cmd) => cmd.run(),
            Command::Plot(args) => args.run(),
            Command::Config(args) => args.run(),
        }
    }
}
