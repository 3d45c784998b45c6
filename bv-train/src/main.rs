//! The `bv-train` binary: `bv-train --config FILE --workdir DIR` trains; `bv-train data`,
//! `config`, `eval`, `plot` and `pp` prepare datasets, check configs, evaluate checkpoints,
//! draw curves and list the pp ops.

use std::error::Error as _;

use bv_train::stop;
use bv_train::TrainError;

fn main() -> std::process::ExitCode {
    bv_core::malloc::reexec_with_tuning();
    let cli = bv_train::cli::Cli::parse_args();
    // A panic has printed its message; it still must not exit under a running execution.
    let Ok(result) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cli.run())) else {
        return stop::exit(101);
    };
    let code = match result {
        Ok(()) => 0,
        Err(TrainError::Interrupted(stopped)) => {
            eprintln!("bv-train: {stopped}");
            stopped.exit_code()
        }
        Err(e) => {
            let mut shown = e.to_string();
            eprintln!("error: {shown}");
            let mut src = e.source();
            while let Some(s) = src {
                // Many errors already end with their cause's text ("path: os error").
                let cause = s.to_string();
                if !shown.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                    shown = cause;
                }
                src = s.source();
            }
            1
        }
    };
    stop::exit(code)
}
