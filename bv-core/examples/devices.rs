//! Finds (or fetches) the PJRT plugin and lists what it offers: the platform of
//! `BV_PLATFORM` (`cpu`, the default, with one device; `cuda`; `tpu`), or N virtual CPU
//! devices when N is given.
//!
//! ```text
//! $ cargo run --release -p bv-core --example devices -- 4
//! plugin   /root/.cache/bv/pjrt/lammps-jax-pjrt-cpu-0.11.2/pjrt_c_api_cpu_plugin.so
//! PJRT API 0.115, StableHLO 1.20.0 (reads back to 0.9.0)
//! platform cpu (version cpu), 4 devices:
//!   0: cpu (cpu:0)
//!   ...
//! ```

use bv_core::pjrt::Client;

/// The client the arguments ask for: N virtual CPU devices, else the platform's default.
fn client(args: &[String]) -> Result<Client, Box<dyn std::error::Error>> {
    match args {
        [] => Ok(Client::from_env()?),
        [n] => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Client::cpu_with_devices(n)?),
            _ => Err(format!("expected a number of CPU devices (at least 1), got {n:?}").into()),
        },
        _ => Err("usage: devices [N]".into()),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let client = client(&args)?;
    let plugin = client.plugin();
    let (major, minor) = plugin.api_version();
    println!("plugin   {}", plugin.path().display());
    println!(
        "PJRT API {major}.{minor}, StableHLO {} (reads back to {})",
        plugin.stablehlo_current_version().unwrap_or_default(),
        plugin.stablehlo_minimum_version().unwrap_or_default()
    );
    println!(
        "platform {} (version {}), {} devices:",
        client.platform_name(),
        client.platform_version(),
        client.devices().len()
    );
    for d in client.devices() {
        println!("  {}: {} ({d:?})", d.id(), d.kind());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The device count follows the arguments (it was fixed at 4).
    #[test]
    fn device_count_follows_the_arguments() {
        let count = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            client(&args).map(|c| c.devices().len())
        };
        assert_eq!(count(&["3"]).unwrap(), 3);
        assert_eq!(count(&["1"]).unwrap(), 1);
        assert!(count(&["0"]).is_err());
        if std::env::var_os("BV_PLATFORM").is_none() {
            assert_eq!(count(&[]).unwrap(), 1);
        }
    }
}
