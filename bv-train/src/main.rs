//! The `bv-train` binary: `bv-train --config FILE --workdir DIR` trains; `bv-train data`,
//! `config` and `plot` prepare datasets, check configs and draw curves.

use clap::Parser;

use bv_train::stop::{self, Interrupted};

fn main() -> std::process::ExitCode {
    bv_core::malloc::reexec_with_tuning();
    let cli = bv_train::cli::Cli::parse();
    // A panic has printed its message; it still must not exit under a running execution.
    let Ok(result) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cli.run())) else {
        return stop::exit(101);
    };
    let code = match result {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<Interrupted>() {
            Some(stopped) => {
                eprintln!("bv-train: {stopped}");
                stopped.exit_code()
            }
            None => {
                eprintln!("error: {e}");
                let mut src = e.source();
                while let Some(s) = src {
                    eprintln!("  caused by: {s}");
                    src = s.source();
                }
                1
            }
        },
    };
    stop::exit(code)
}
