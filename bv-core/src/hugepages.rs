//! Transparent huge pages for the runtime's buffers.
//!
//! XLA's CPU runtime allocates each execution's temporary and output buffers with `malloc`
//! and frees them afterwards. Buffers of tens of megabytes are `mmap`ed and unmapped every
//! step, so each step pays one page fault per 4 KiB touched: on a small ViT that was 16
//! million faults and a third of the run in the kernel. glibc's `glibc.malloc.hugetlb=1`
//! tunable makes `malloc` ask for transparent huge pages instead (2 MiB, 512× fewer
//! faults). Tunables are read only at process start, so a binary opts in by calling
//! [`reexec_with_hugepages`] first thing in `main`.

/// Environment variable that turns the re-exec off (`BV_HUGEPAGES=0`).
pub const ENV: &str = "BV_HUGEPAGES";

const TUNABLE: &str = "glibc.malloc.hugetlb";

/// Restarts this program (same pid, arguments and environment) with `glibc.malloc.hugetlb=1`
/// added to `GLIBC_TUNABLES`, once. Does nothing off Linux/glibc, when the kernel has
/// transparent huge pages disabled, when the tunable is already set, or with
/// `BV_HUGEPAGES=0`. Call it before any thread starts. Returns only when it did nothing.
pub fn reexec_with_hugepages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if tunables.contains(TUNABLE) || std::env::var(ENV).is_ok_and(|v| v == "0") {
            return;
        }
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !(thp.contains("[madvise]") || thp.contains("[always]")) {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let value = if tunables.is_empty() {
            format!("{TUNABLE}=1")
        } else {
            format!("{tunables}:{TUNABLE}=1")
        };
        // `exec` returns only on failure; the program then simply runs without them.
        let _ = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", value)
            .exec();
    }
}
