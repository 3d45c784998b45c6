//! The `bv-train` binary: `bv-train --config FILE --workdir DIR` trains; `bv-train data`,
//! `config` and `plot` prepare datasets, check configs and draw curves.

use clap::Parser;

fn main() -> std::process::ExitCode {
    bv_core::malloc::reexec_with_tuning();
    let cli = bv_train::cli::Cli::parse();
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut src = e.source();
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}
