//! pp ops against big_vision's TensorFlow outputs in `tests/golden/pp`.

mod common;

use bv_train::data::{Array, Example, Value};
use bv_train::pp::{Pipeline, PpError, Rng, OPS};

fn run(spec: &str, ex: &mut Example) {
    Pipeline::build(spec, OPS)
        .unwrap()
        .apply(ex, &mut Rng::new(0, 0))
        .unwrap();
}

#[test]
fn image_ops_equal_tensorflow() {
    let dir = common::golden_pp_dir();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let mut checked = 0;
    for input in index["inputs"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(input["input"].as_str().unwrap())).unwrap();
        let npz = dir.join(input["npz"].as_str().unwrap());
        for (name, spec) in input["outputs"].as_object().unwrap() {
            let spec = spec.as_str().unwrap();
            let mut ex = Example::new();
            ex.insert("image".into(), Value::Bytes(Array::scalar(bytes.clone())));
            run(spec, &mut ex);
            let want = common::npz(&npz, name);
            let what = format!("{} {spec}", input["input"]);
            assert_eq!(ex["image"].shape(), want.shape.as_slice(), "{what}");
            match &ex["image"] {
                Value::U8(a) => assert!(a.data == want.u8(), "{what}: uint8 values differ"),
                Value::F32(a) => {
                    let w = want.f32();
                    let bad = a
                        .data
                        .iter()
                        .zip(&w)
                        .filter(|(x, y)| x.to_bits() != y.to_bits())
                        .count();
                    assert_eq!(bad, 0, "{what}: {bad} float32 values differ");
                }
                other => panic!("{what}: unexpected {}", other.dtype()),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 36, "outputs checked");
}

#[test]
fn onehot_equals_tensorflow() {
    let dir = common::golden_pp_dir();
    let npz = dir.join("onehot.npz");
    let cases: [(&str, Value); 5] = [
        ("onehot(10)", Value::I64(Array::scalar(3))),
        ("onehot(6)", Value::I64(Array::new(vec![3], vec![1, 4, 4]))),
        (
            "onehot(6, multi=False)",
            Value::I64(Array::new(vec![3], vec![1, 4, 4])),
        ),
        ("onehot(5, on=0.9, off=0.025)", Value::I64(Array::scalar(2))),
        (
            "onehot(4, key='labels', key_result='labels_1hot')",
            Value::I64(Array::new(vec![2], vec![0, 2])),
        ),
    ];
    for (j, (spec, labels)) in cases.into_iter().enumerate() {
        let mut ex = Example::new();
        ex.insert("labels".into(), labels);
        run(spec, &mut ex);
        let key = if j == 4 { "labels_1hot" } else { "labels" };
        let want = common::npz(&npz, &format!("case{j}/{key}"));
        let Value::F32(got) = &ex[key] else {
            panic!("{spec}: not float32")
        };
        assert_eq!(got.shape, want.shape, "{spec}");
        assert_eq!(got.data, want.f32(), "{spec}");
        if j == 4 {
            let orig = common::npz(&npz, "case4/labels");
            assert_eq!(
                ex["labels"],
                Value::I64(Array::new(orig.shape.clone(), orig.i64()))
            );
        }
    }
}

#[test]
fn bad_pp_strings_are_explained() {
    let err = |s: &str| Pipeline::build(s, OPS).unwrap_err();
    match err("decode|resise(224)") {
        PpError::UnknownOp {
            col, suggestions, ..
        } => {
            assert_eq!(col, 8);
            assert_eq!(suggestions[0], "resize");
        }
        e => panic!("{e}"),
    }
    let msg = err("decode|inception_crop(224)|flip_lr|value_rnage(-1, 1)").to_string();
    assert!(
        msg.contains("column 36") && msg.contains("did you mean value_range"),
        "{msg}"
    );
    let msg = err("resize(224, methd='nearest')").to_string();
    assert!(msg.contains("resize: unknown argument 'methd'"), "{msg}");
    let msg = err("resize(method='cubic', size=3)").to_string();
    assert!(msg.contains("'cubic' is not supported"), "{msg}");
    let msg = err("resize").to_string();
    assert!(msg.contains("missing required argument 'size'"), "{msg}");
    let msg = err("decode|resize(224").to_string();
    assert!(msg.contains("column 18"), "{msg}");
    // Applying to a wrong input names the op and the problem.
    let pp = Pipeline::build("decode|central_crop(64)", OPS).unwrap();
    let mut ex = Example::new();
    ex.insert(
        "image".into(),
        Value::Bytes(Array::scalar(b"GIF89a".to_vec())),
    );
    let msg = pp
        .apply(&mut ex, &mut Rng::new(0, 0))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("pp op decode: unknown image format"), "{msg}");
    let mut ex = Example::new();
    let msg = pp
        .apply(&mut ex, &mut Rng::new(0, 0))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no key 'image'"), "{msg}");
}
