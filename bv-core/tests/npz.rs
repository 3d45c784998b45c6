//! `.npy`/`.npz` against NumPy: golden files written by big_vision's tools, fixtures written
//! by `numpy.savez`/`savez_compressed` (tests/data/npz_fixture.py), and, where python3 with
//! NumPy is installed, every golden file byte for byte and our writer read back by NumPy.

use std::path::{Path, PathBuf};
use std::process::Command;

use bv_core::io::{read_npy, read_npz, write_npy, write_npz, Compression, HostArray, IoError};
use bv_core::DType;
use sha2::{Digest, Sha256};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

fn dtype_by_name(name: &str) -> DType {
    *DType::ALL.iter().find(|d| d.name() == name).unwrap()
}

/// The values npz_fixture.py writes, in row-major order: arange(24) shaped (2, 3, 4),
/// minus 12 for signed types, times 0.25 after that for floats, `% 3 == 0` for bool.
fn expected(d: DType) -> Vec<f64> {
    (0..24)
        .map(|i| {
            let i = f64::from(i);
            match d {
                DType::Bool => f64::from(i % 3.0 == 0.0),
                d if d.is_signed_int() => i - 12.0,
                d if d.is_float() => (i - 12.0) * 0.25,
                _ => i,
            }
        })
        .collect()
}

fn check_fixture(path: &Path) {
    let arrays = read_npz(path).unwrap();
    let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
    for d in DType::ALL {
        for order in ["C", "F"] {
            let name = format!("{}_{order}", d.name());
            let a = &arrays
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{name} missing from {}: {names:?}", path.display()));
            assert_eq!(a.1.dtype(), d, "{name}");
            assert_eq!(a.1.shape(), &[2, 3, 4], "{name}");
            assert_eq!(a.1.to_f64(), expected(d), "{name}");
        }
    }
    let get = |n: &str| &arrays.iter().find(|(k, _)| k == n).unwrap().1;
    assert_eq!(get("be_int32").to_vec::<i32>().unwrap(), {
        (0..24).map(|i| i - 12).collect::<Vec<i32>>()
    });
    assert_eq!(get("scalar_float64").shape(), &[] as &[usize]);
    assert_eq!(get("scalar_float64").to_vec::<f64>().unwrap(), vec![3.5]);
    assert_eq!(get("empty_int32").shape(), &[0, 5]);
    let f = get("float32_F").to_ndarray::<f32>().unwrap();
    assert_eq!(f[[1, 2, 3]], 2.75);
    assert_eq!(f[[0, 1, 0]], -2.0);
}

#[test]
fn reads_numpy_savez_every_dtype_and_order() {
    check_fixture(&data("numpy_fixture_stored.npz"));
}

#[test]
fn reads_numpy_savez_compressed_every_dtype_and_order() {
    check_fixture(&data("numpy_fixture_deflated.npz"));
}

/// tests/data/golden_npz_ref.json: dtype, shape, float64 sum, first and last value of
/// every array in five golden files, as NumPy reports them (`npz_fixture.py summary`).
#[test]
fn golden_files_match_numpy_summary() {
    let text = std::fs::read_to_string(data("golden_npz_ref.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for (file, entries) in reference.as_object().unwrap() {
        let arrays = read_npz(golden().join(file)).unwrap();
        let entries = entries.as_object().unwrap();
        assert_eq!(arrays.len(), entries.len(), "{file}");
        for (name, a) in &arrays {
            let r = entries[name].as_array().unwrap();
            assert_eq!(a.dtype().name(), r[0].as_str().unwrap(), "{file}:{name}");
            let shape: Vec<usize> = r[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(a.shape(), shape.as_slice(), "{file}:{name}");
            let v = a.to_f64();
            let sum: f64 = v.iter().sum();
            let want = r[2].as_f64().unwrap();
            assert!(
                (sum - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{file}:{name}: sum {sum} vs {want}"
            );
            // serde_json's default float parsing may be off by one ulp of f64.
            let close = |a: f64, b: &serde_json::Value| {
                let b = b.as_f64().unwrap();
                (a - b).abs() <= 1e-15 * b.abs()
            };
            if let (Some(first), Some(last)) = (v.first(), v.last()) {
                assert!(
                    close(*first, &r[3]),
                    "{file}:{name}: first {first} vs {}",
                    r[3]
                );
                assert!(
                    close(*last, &r[4]),
                    "{file}:{name}: last {last} vs {}",
                    r[4]
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked}");
}

fn python_numpy() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("python3 with numpy not found: skipping the NumPy cross-check");
    }
    ok
}

/// `{file: {name: [dtype, shape, sha256]}}` from NumPy.
fn numpy_digest(files: &[PathBuf]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(data("npz_fixture.py"))
        .arg("digest")
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_same_as_numpy(file: &Path, arrays: &[(String, HostArray)], r: &serde_json::Value) {
    let r = r[file.to_str().unwrap()].as_object().unwrap();
    assert_eq!(arrays.len(), r.len(), "{}", file.display());
    for (name, a) in arrays {
        let e = r[name].as_array().unwrap();
        assert_eq!(a.dtype().name(), e[0].as_str().unwrap(), "{name}");
        let sha = format!("{:x}", Sha256::digest(a.bytes()));
        assert_eq!(sha, e[2].as_str().unwrap(), "{}:{name}", file.display());
    }
}

#[test]
fn every_golden_file_is_byte_identical_to_numpy() {
    if !python_numpy() {
        return;
    }
    let mut files = Vec::new();
    let mut dirs = vec![golden()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "npz") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 60, "{}", files.len());
    let reference = numpy_digest(&files);
    for f in &files {
        assert_same_as_numpy(f, &read_npz(f).unwrap(), &reference);
    }
}

#[test]
fn numpy_reads_what_we_write() {
    if !python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arrays = read_npz(data("numpy_fixture_stored.npz")).unwrap();
    let mut files = Vec::new();
    for (c, tag) in [(Compression::Stored, "s"), (Compression::Deflated, "d")] {
        let p = dir.path().join(format!("ours_{tag}.npz"));
        write_npz(&p, arrays.iter().map(|(k, a)| (k, a)), c).unwrap();
        assert_eq!(read_npz(&p).unwrap(), arrays);
        files.push(p);
    }
    let reference = numpy_digest(&files);
    for f in &files {
        assert_same_as_numpy(f, &arrays, &reference);
    }
}

#[test]
fn npy_round_trip_and_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.npy");
    let a = HostArray::from_slice(&[half::bf16::from_f32(1.5), half::bf16::MIN], &[2]).unwrap();
    write_npy(&p, &a).unwrap();
    assert_eq!(read_npy(&p).unwrap(), a);

    let missing = dir.path().join("missing.npz");
    let e = read_npz(&missing).unwrap_err();
    assert!(matches!(e, IoError::Io { .. }));
    assert!(e.to_string().contains("missing.npz"), "{e}");

    let e = read_npz(&p).unwrap_err();
    assert!(matches!(e, IoError::Zip { .. }), "{e}");
    assert!(e.to_string().contains("x.npy: not a valid .npz"), "{e}");

    let mut bytes = std::fs::read(data("numpy_fixture_deflated.npz")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    let bad = dir.path().join("bad.npz");
    std::fs::write(&bad, bytes).unwrap();
    let e = read_npz(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.npz:"), "{e}");

    let dup = [("a", &a), ("a", &a)];
    let e = write_npz(dir.path().join("d.npz"), dup, Compression::Stored).unwrap_err();
    assert!(e.to_string().contains("duplicate entry \"a\""), "{e}");
}

#[test]
fn ml_dtypes_bfloat16_reads_as_bf16() {
    let arrays = read_npz(data("numpy_fixture_stored.npz")).unwrap();
    let bf = &arrays.iter().find(|(n, _)| n == "bfloat16_C").unwrap().1;
    assert_eq!(bf.dtype(), dtype_by_name("bfloat16"));
    assert_eq!(bf.to_vec::<half::bf16>().unwrap()[1].to_f32(), -2.75);
}
