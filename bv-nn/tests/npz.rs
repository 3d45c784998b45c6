//! npz checkpoints: golden `params_init.npz` loaded into a freshly initialized ViT gives
//! big_vision's forward (tolerance as in vit_forward: `1e-5 + 1e-4 |want|`); write/read
//! round trip; `params/` prefixes; bf16 entries; errors for missing, unexpected and
//! mis-shaped parameters and truncated files; posemb resampling to another grid checked
//! on a linear grid, which bilinear resampling reproduces exactly; old ViT posemb layouts.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use bv_core::io::{write_npz, Compression, HostArray};
use bv_core::random::Key;
use bv_core::{jit, DType, Spec, Tensor};
use bv_nn::models::{build, ImageModel};
use bv_nn::npz::{self, NpzError};
use bv_nn::Params;
use common::{check_all, entry, forward, golden, meta};
use serde_json::json;

fn init(model: &Arc<dyn ImageModel>, input: &[usize]) -> Params<HostArray> {
    let (m, spec) = (model.clone(), Spec::new(input, DType::F32));
    let f = jit(move |key: Tensor| m.init(&key, &spec));
    npz::to_host(&f.call(&Key::from_seed(7).to_array().unwrap()).unwrap()).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bv-nn-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn mu8() -> (Arc<dyn ImageModel>, PathBuf) {
    let dir = golden("vit", "mu8_map");
    (build("vit", &meta(&dir)["model_kwargs"]).unwrap(), dir)
}

#[test]
fn golden_checkpoint_reproduces_forward() {
    let (model, dir) = mu8();
    let init = init(&model, &[3, 32, 32, 3]);
    let params = npz::load(model.as_ref(), &init, dir.join("params_init.npz"), &[]).unwrap();
    let image = entry(&dir.join("inputs.npz"), "image");
    let (logits, mut out) = forward(&model)(npz::to_device(&params).unwrap(), &image);
    out.insert("logits", logits);
    assert!(check_all(&dir.join("expected_forward.npz"), &out, 1e-5, 1e-4, 0.0) > 5);
}

#[test]
fn round_trip_and_prefixes() {
    let (_, dir) = mu8();
    let params = npz::read(dir.join("params_init.npz")).unwrap();
    let path = tmp("round_trip.npz");
    npz::write(&path, &params).unwrap();
    let back = npz::read(&path).unwrap();
    assert_eq!(
        back.names().collect::<Vec<_>>(),
        params.names().collect::<Vec<_>>()
    );
    for ((_, a), (_, b)) in params.iter().zip(back.iter()) {
        assert_eq!(
            (a.shape(), a.dtype(), a.bytes()),
            (b.shape(), b.dtype(), b.bytes())
        );
    }
    for prefix in ["params/", "opt/target/"] {
        let prefixed: Vec<(String, &HostArray)> = params
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v))
            .collect();
        let path = tmp("prefixed.npz");
        write_npz(
            &path,
            prefixed.iter().map(|(k, v)| (k, *v)),
            Compression::Deflated,
        )
        .unwrap();
        let names: Vec<String> = npz::read(&path)
            .unwrap()
            .names()
            .map(String::from)
            .collect();
        assert_eq!(names, params.names().collect::<Vec<_>>());
    }
}

/// Writes the golden mu8 parameters changed by `edit` and loads them into the model.
fn load_edited(
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, HostArray)>),
    dont_load: &[String],
) -> (
    Result<Params<HostArray>, NpzError>,
    Params<HostArray>,
    PathBuf,
) {
    let (model, dir) = mu8();
    let init = init(&model, &[3, 32, 32, 3]);
    let mut entries: Vec<(String, HostArray)> = npz::read(dir.join("params_init.npz"))
        .unwrap()
        .into_iter()
        .collect();
    edit(&mut entries);
    let path = tmp(name);
    write_npz(
        &path,
        entries.iter().map(|(k, v)| (k, v)),
        Compression::Stored,
    )
    .unwrap();
    (
        npz::load(model.as_ref(), &init, &path, dont_load),
        init,
        path,
    )
}

#[test]
fn missing_key_names_it_and_dont_load_keeps_init() {
    let drop_probe = |e: &mut Vec<(String, HostArray)>| e.retain(|(k, _)| k != "MAPHead_0/probe");
    let (r, _, path) = load_edited("missing.npz", drop_probe, &[]);
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("- MAPHead_0/probe") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
    let (r, init, _) = load_edited("missing.npz", drop_probe, &["MAPHead_0/.*".into()]);
    let p = r.unwrap();
    assert_eq!(
        p.get("MAPHead_0/probe").unwrap().bytes(),
        init.get("MAPHead_0/probe").unwrap().bytes()
    );
    assert_eq!(
        p.names().collect::<Vec<_>>(),
        init.names().collect::<Vec<_>>()
    );
}

#[test]
fn unexpected_key_and_wrong_shape_are_named() {
    let extra = HostArray::from_slice(&[0f32; 4], &[4]).unwrap();
    let (r, _, _) = load_edited("extra.npz", |e| e.push(("head2/bias".into(), extra)), &[]);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("+ head2/bias"), "{msg}");

    let bad = HostArray::from_slice(&[0f32; 32 * 5], &[32, 5]).unwrap();
    let reshape = |e: &mut Vec<(String, HostArray)>| {
        e.iter_mut().find(|(k, _)| k == "head/kernel").unwrap().1 = bad;
    };
    let (r, _, path) = load_edited("shape.npz", reshape, &[]);
    let err = r.unwrap_err();
    assert!(
        matches!(&err, NpzError::Shape { name, expected, found, file }
            if name == "head/kernel" && expected == &[32, 10] && found == &[32, 5] && file == &path),
        "{err}"
    );
    assert!(err.to_string().contains("[32, 5]"), "{err}");
}

#[test]
fn truncated_file_is_an_error() {
    let (_, dir) = mu8();
    let bytes = std::fs::read(dir.join("params_init.npz")).unwrap();
    let path = tmp("truncated.npz");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = npz::read(&path).unwrap_err();
    assert!(matches!(err, NpzError::Io(_)), "{err}");
    assert!(err.to_string().contains("truncated.npz"), "{err}");
}

#[test]
fn bf16_checkpoint_loads_as_f32() {
    let (_, dir) = mu8();
    let params = npz::read(dir.join("params_init.npz")).unwrap();
    let probe = params.get("MAPHead_0/probe").unwrap();
    let bf16: Vec<u8> = probe
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let bf16 = HostArray::from_bytes(DType::BF16, probe.shape(), bf16).unwrap();
    let (r, _, _) = load_edited(
        "bf16.npz",
        |e| {
            e.iter_mut()
                .find(|(k, _)| k == "MAPHead_0/probe")
                .unwrap()
                .1 = bf16
        },
        &[],
    );
    let loaded = r.unwrap();
    let got = loaded.get("MAPHead_0/probe").unwrap();
    assert_eq!(got.dtype(), DType::F32);
    for (g, w) in got
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .zip(probe.to_vec::<f32>().unwrap())
    {
        assert!((g - w).abs() <= w.abs() / 128.0, "{g} vs {w}");
    }
}

/// A 4x4 grid whose embedding is linear in (row, column) resampled to 6x6: bilinear
/// (scipy's `zoom(order=1)`, corners aligned) gives the same linear function at
/// `(i·3/5, j·3/5)`.
#[test]
fn posemb_resampled_to_new_grid() {
    let model = build("vit", &json!({"variant": "mu/8", "num_classes": 10})).unwrap();
    let d = 32;
    let f = |r: f64, c: f64, k: usize| r * 0.5 - c * 0.25 + k as f64 * 0.01;
    let old: Vec<f32> = (0..16)
        .flat_map(|t| (0..d).map(move |k| f((t / 4) as f64, (t % 4) as f64, k) as f32))
        .collect();
    let mut small = npz::read(golden("vit", "mu8_map").join("params_init.npz")).unwrap();
    small.insert(
        "pos_embedding",
        HostArray::from_slice(&old, &[1, 16, d]).unwrap(),
    );
    let path = tmp("posemb.npz");
    npz::write(&path, &small).unwrap();
    let init = init(&model, &[1, 48, 48, 3]);
    let dont_load = ["MAPHead_0/.*".to_string()];
    let p = npz::load(model.as_ref(), &init, &path, &dont_load).unwrap();
    let pe = p.get("pos_embedding").unwrap();
    assert_eq!(pe.shape(), &[1, 36, d]);
    let got = pe.to_vec::<f32>().unwrap();
    for t in 0..36 {
        let (r, c) = ((t / 6) as f64 * 0.6, (t % 6) as f64 * 0.6);
        for k in 0..d {
            let want = f(r, c, k);
            assert!(
                (f64::from(got[t * d + k]) - want).abs() < 1e-6,
                "({t}, {k})"
            );
        }
    }
}

/// `vit.fix_old_checkpoints`: a posemb under `Transformer/posembed_input` holding a `[cls]`
/// row before the 4x4 grid is moved to `pos_embedding` without that row, which is added to
/// `cls` (sums checked in float64).
#[test]
fn old_combined_cls_posemb_is_split() {
    let model = build(
        "vit",
        &json!({"variant": "mu/8", "num_classes": 10, "pool_type": "tok"}),
    )
    .unwrap();
    let init = init(&model, &[1, 32, 32, 3]);
    let d = 32;
    let row: Vec<f32> = (0..d).map(|k| 0.5 - k as f32 / 64.0).collect();
    let grid: Vec<f32> = (0..16 * d).map(|i| (i as f32 * 0.37).sin()).collect();
    let cls: Vec<f32> = (0..d).map(|k| k as f32 / 16.0).collect();
    let mut old: Params<HostArray> = init
        .iter()
        .filter(|(k, _)| *k != "pos_embedding")
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let combined: Vec<f32> = row.iter().chain(&grid).copied().collect();
    old.insert(
        "Transformer/posembed_input/pos_embedding",
        HostArray::from_slice(&combined, &[1, 17, d]).unwrap(),
    );
    old.insert("cls", HostArray::from_slice(&cls, &[1, 1, d]).unwrap());
    let path = tmp("old_posemb.npz");
    npz::write(&path, &old).unwrap();
    let p = npz::load(model.as_ref(), &init, &path, &[]).unwrap();
    assert_eq!(
        p.get("pos_embedding").unwrap().to_vec::<f32>().unwrap(),
        grid
    );
    let got = p.get("cls").unwrap().to_vec::<f32>().unwrap();
    for k in 0..d {
        let want = f64::from(cls[k]) + f64::from(row[k]);
        assert!((f64::from(got[k]) - want).abs() <= want.abs() * 1e-7, "{k}");
    }
}
