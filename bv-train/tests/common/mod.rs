//! Shared test helpers: provisioning of independent reference data.
#![allow(dead_code)]

use std::path::PathBuf;

/// The TFDS-written Fashion-MNIST fixture (1000 train, 200 test).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/tfds")
}

/// The golden pp outputs written by big_vision/TensorFlow.
pub fn golden_pp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/golden/pp")
}

/// The raw Fashion-MNIST IDX directory, provisioned as `bv-train data prepare` does (installed
/// package, user cache, or `apt-get download` + `dpkg-deb -x`). `None` (with the reason
/// printed) only when none of those is possible, e.g. apt is absent.
pub fn fashion_mnist_idx() -> Option<PathBuf> {
    match bv_train::data::fashion_mnist::provide_idx_dir(None) {
        Ok(d) => Some(d),
        Err(e) => {
            let apt = std::process::Command::new("apt-get")
                .arg("--version")
                .output();
            if apt.is_ok_and(|o| o.status.success()) {
                panic!("apt is available but Fashion-MNIST could not be provisioned: {e}");
            }
            eprintln!("SKIP: no Fashion-MNIST IDX files and no apt to fetch them: {e}");
            None
        }
    }
}
