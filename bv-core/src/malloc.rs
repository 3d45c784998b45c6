//! glibc `malloc` settings for the runtime's per-step buffers.
//!
//! XLA's CPU runtime allocates each execution's temporary buffer (about 95 MB for the
//! default job's step) with `malloc` and frees it afterwards. With glibc's defaults a buffer
//! that large is `mmap`ed and unmapped every step, so each step pays one page fault per
//! 4 KiB it touches: 14 million faults for 700 steps, a third of the run in the kernel.
//! These tunables make glibc keep freed memory for reuse instead: every allocation comes
//! from one heap (`mmap_max=0`, `arena_max=1`) that is never trimmed (`trim_threshold`) and
//! grows in large steps (`top_pad`). The price is a resident size that stays at its peak.
//! Tunables are read only at process start, so a binary opts in by calling
//! [`reexec_with_tuning`] first thing in `main`.

/// Environment variable that turns the re-exec off (`BV_MALLOC_TUNING=0`).
pub const ENV: &str = "BV_MALLOC_TUNING";

/// The glibc tunables set, as `GLIBC_TUNABLES` takes them.
pub const TUNABLES: &str = "glibc.malloc.mmap_max=0:glibc.malloc.arena_max=1:\
glibc.malloc.trim_threshold=4294967296:glibc.malloc.top_pad=268435456";

/// Restarts this program (same pid, arguments and environment) with [`TUNABLES`] in
/// `GLIBC_TUNABLES`, once. Does nothing off Linux/glibc, when `GLIBC_TUNABLES` already sets
/// any `glibc.malloc` tunable (the user's choice stands), or with `BV_MALLOC_TUNING=0`. Call
/// it before any thread starts. Returns only when it did nothing.
pub fn reexec_with_tuning() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if tunables.contains("glibc.malloc.") || std::env::var(ENV).is_ok_and(|v| v == "0") {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let value = if tunables.is_empty() {
            TUNABLES.to_string()
        } else {
            format!("{tunables}:{TUNABLES}")
        };
        // `exec` returns only on failure; the program then simply runs with glibc's defaults.
        let _ = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", value)
            .exec();
    }
}
