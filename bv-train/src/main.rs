//! The `bv-train` binary: `bv-train data prepare fashion_mnist`, `bv-train data inspect NAME`.

use clap::Parser;

fn main() -> std::process::ExitCode {
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
