//! `bv-train export`: a checkpoint's parameters as a big_vision `.npz` (names joined by
//! `/`, no `params/` prefix), the file `model_init` reads; e.g. the image tower of a LiT run
//! from the default job: `bv-train export workdirs/fmnist --out fmnist_vit.npz`.

use crate::error::TrainError;
use std::path::PathBuf;

use bv_core::tree::Params;

use crate::checkpoint;

/// The flags of `bv-train export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A workdir (its latest checkpoint) or a checkpoint folder (`checkpoint.bv-000003281`).
    pub path: PathBuf,
    /// The `.npz` to write (written to a temporary name, then renamed).
    #[arg(long)]
    pub out: PathBuf,
}

impl ExportArgs {
    /// Writes the parameters; prints how many and from which step.
    pub fn run(self) -> Result<(), TrainError> {
        let dir = match checkpoint::last_dir(&self.path)? {
            Some(d) => d,
            None if self.path.join("manifest.json").is_file() => self.path.clone(),
            None => {
                return Err(TrainError::NotACheckpoint {
                    path: self.path.clone(),
                })
            }
        };
        let ckpt = checkpoint::load(&dir)?;
        let params: Params<_> = ckpt
            .leaves
            .iter()
            .filter_map(|(name, a)| Some((name.strip_prefix("params/")?.to_string(), a.clone())))
            .collect();
        if params.is_empty() {
            return Err(TrainError::NoParams { dir });
        }
        let tmp = self.out.with_extension("npz.tmp");
        bv_nn::npz::write(&tmp, &params)?;
        std::fs::rename(&tmp, &self.out)?;
        println!(
            "{} parameters of step {} from {} written to {}",
            params.len(),
            ckpt.step,
            dir.display(),
            self.out.display()
        );
        Ok(())
    }
}
