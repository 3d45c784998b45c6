//! The `bv-train` binary: `bv-train --config FILE --workdir DIR` trains; `bv-train data`,
//! `config`, `eval`, `plot` and `pp` prepare datasets, check configs, evaluate checkpoints,
//! draw curves and list the pp ops.

fn main() -> std::process::ExitCode {
    bv_core::malloc::reexec_with_tuning();
    let cli = bv_train::cli::Cli::parse_args();
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
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
            std::process::ExitCode::FAILURE
        }
    }
}
