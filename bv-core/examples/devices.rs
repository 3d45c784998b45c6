//! Finds (or fetches) the CPU PJRT plugin and lists what it offers.
//!
//! ```text
//! $ cargo run -p bv-core --example devices
//! plugin   /root/.cache/bv/pjrt/lammps-jax-pjrt-cpu-0.11.2/pjrt_c_api_cpu_plugin.so
//! PJRT API 0.115, StableHLO 1.20.0 (reads back to 0.9.0)
//! platform cpu (version cpu), 4 devices:
//!   0: cpu (cpu:0)
//!   ...
//! ```

use bv_core::pjrt::Client;

fn main() -> Result<(), bv_core::pjrt::Error> {
    let client = Client::cpu_with_devices(4)?;
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
