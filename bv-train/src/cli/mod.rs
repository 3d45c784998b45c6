//! The `bv-train` command line: one module per subcommand group.

pub mod data;

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
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        match self.command {
            Command::Data(cmd) => cmd.run(),
        }
    }
}
