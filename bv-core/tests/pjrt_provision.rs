//! Provisioning the CPU plugin into an empty cache from several threads at once: one
//! download, a verified and complete file with its verification stamp, no temporary files
//! left behind.
//!
//! This file is its own test binary because it points `BV_CACHE_DIR` at a fresh directory.

use std::path::PathBuf;

use bv_core::pjrt::provision::{self, CACHE_ENV};
use bv_core::pjrt::Plugin;

/// SHA-256 of the plugin inside the pinned wheel, as recorded in third_party/PLUGINS.md.
fn pinned_plugin_sha256(name: &str) -> &'static str {
    match name {
        "lammps-jax-pjrt-cpu" => "ad1309ac822b1b24d51b7f9947c7c9fa9ef5d67f390584cbc3d1fa2428fed9c2",
        "xla-cpu-pjrt" => "88c3f28c5900f48ad4a82cab9e79bba9537809743395e341485f8794268820dc",
        other => panic!("unknown package {other}"),
    }
}

#[test]
fn concurrent_fetches_share_one_verified_copy() {
    let cache = std::env::temp_dir().join(format!("bv-provision-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    std::env::set_var(CACHE_ENV, &cache);
    let package = provision::cpu_package().unwrap();

    let paths: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| provision::fetch(&package).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(paths.iter().all(|p| *p == paths[0]));
    assert!(paths[0].starts_with(&cache));
    assert_eq!(
        provision::sha256_file(&paths[0]).unwrap(),
        pinned_plugin_sha256(package.name)
    );
    let leftovers: Vec<_> = std::fs::read_dir(paths[0].parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock" && !n.ends_with(".so") && !n.ends_with(".so.verified"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // The pin bv checks cached copies against is the one PLUGINS.md records, and the
    // fetched copy carries the stamp that spares later runs the hashing.
    assert_eq!(package.plugin_sha256, pinned_plugin_sha256(package.name));
    let stamp = std::fs::read_to_string(paths[0].with_extension("so.verified")).unwrap();
    assert!(
        stamp.starts_with(&format!("sha256 {} size ", package.plugin_sha256)),
        "{stamp}"
    );

    // The search now finds the cached copy, and it loads as a plugin.
    assert_eq!(provision::cpu_plugin().unwrap(), paths[0]);
    assert_eq!(Plugin::load(&paths[0]).unwrap().api_version().0, 0);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn unknown_package_choice_is_explained() {
    // Runs in the same process as the test above, so it must not touch BV_CACHE_DIR.
    let err = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_reports_bad_choice",
            "--nocapture",
            "--include-ignored",
        ])
        .env(provision::CPU_PACKAGE_ENV, "no-such-plugin")
        .output()
        .unwrap();
    assert!(
        err.status.success(),
        "{}",
        String::from_utf8_lossy(&err.stdout)
    );
}

#[test]
#[ignore = "run by unknown_package_choice_is_explained in a child process"]
fn child_reports_bad_choice() {
    let err = provision::cpu_plugin().unwrap_err().to_string();
    assert!(
        err.contains("BV_CPU_PLUGIN must be one of: lammps-jax-pjrt-cpu, xla-cpu-pjrt"),
        "{err}"
    );
}
