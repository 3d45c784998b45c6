//! Shared test helpers: provisioning of independent reference data.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod buckets;
pub mod gcs_xml_put;
pub mod golden;
pub mod golden_steps;
pub mod train;

/// The TFDS-written Fashion-MNIST fixture (1000 train, 200 test).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tfds")
}

/// The golden pp outputs written by big_vision/TensorFlow.
pub fn golden_pp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/pp")
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

/// One array of an `.npz` archive: numpy dtype descriptor, shape, raw little-endian bytes.
pub struct Npy {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Npy {
    pub fn u8(&self) -> &[u8] {
        assert_eq!(self.descr, "|u1");
        &self.data
    }
    pub fn f32(&self) -> Vec<f32> {
        assert_eq!(self.descr, "<f4");
        self.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    pub fn i64(&self) -> Vec<i64> {
        assert_eq!(self.descr, "<i8");
        self.data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// Reads array `key` of the npz archive at `path`.
pub fn npz(path: &std::path::Path, key: &str) -> Npy {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut b = Vec::new();
    z.by_name(&format!("{key}.npy"))
        .unwrap()
        .read_to_end(&mut b)
        .unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let (hl, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize,
            12,
        )
    };
    let hdr = std::str::from_utf8(&b[start..start + hl]).unwrap();
    let field = |name: &str| {
        hdr.split(&format!("'{name}': "))
            .nth(1)
            .unwrap()
            .to_string()
    };
    let descr = field("descr").split('\'').nth(1).unwrap().to_string();
    let shape_s = field("shape");
    let shape = shape_s[1..shape_s.find(')').unwrap()]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert!(field("fortran_order").starts_with("False"));
    Npy {
        descr,
        shape,
        data: b[start + hl..].to_vec(),
    }
}

/// Rewrites the checksum of a checkpoint manifest edited on purpose, as the format defines
/// it: the SHA-256 of the manifest's compact JSON with keys sorted (serde_json's default
/// map sorts them) and without the `checksum` key.
pub fn reseal_manifest(path: &std::path::Path, mut manifest: serde_json::Value) {
    use sha2::Digest;
    manifest.as_object_mut().unwrap().remove("checksum");
    let digest = sha2::Sha256::digest(serde_json::to_vec(&manifest).unwrap());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    manifest["checksum"] = hex.into();
    std::fs::write(path, manifest.to_string()).unwrap();
}
