//! `bv-train plot WORKDIR [--out FILE.svg|FILE.png]`.

use crate::error::TrainError;
use std::path::PathBuf;

/// Draws the loss, schedule and eval curves of a workdir's metrics.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  bv-train plot workdirs/fashion_mnist --out curves.png")]
pub struct PlotArgs {
    /// The training workdir (holds big_vision_metrics.txt).
    pub workdir: PathBuf,
    /// Output file: SVG, or PNG for a name ending in .png; default WORKDIR/metrics.svg.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl PlotArgs {
    /// Writes the plot and prints its path.
    pub fn run(self) -> Result<(), TrainError> {
        let out = crate::plot::plot(&self.workdir, self.out.as_deref())?;
        println!("{}", out.display());
        Ok(())
    }
}
