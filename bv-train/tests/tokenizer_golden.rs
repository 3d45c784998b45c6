//! SentencePiece and the `tokenize` pp op against `tests/golden/siglip/tokenizer`
//! (big_vision's `pp/ops_text.py` on the SentencePiece library): every text's raw ids and
//! decoded text, and every `tokenize` case (max_len, eos none/yes/sticky, lower, pad_value as
//! an id or a piece), exactly.

use std::path::PathBuf;

use bv_train::data::{Array, Example, Value};
use bv_train::pp::sentencepiece::SentencePiece;
use bv_train::pp::{Pipeline, Rng, OPS};
use serde_json::Value as Json;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/siglip/tokenizer")
}

fn expected() -> Json {
    serde_json::from_slice(&std::fs::read(dir().join("expected.json")).unwrap()).unwrap()
}

fn ids(v: &Json) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn raw_ids_and_decoding() {
    let sp = SentencePiece::open(dir().join("spm.model")).unwrap();
    let e = expected();
    assert_eq!(sp.len() as u64, e["vocab_size"].as_u64().unwrap());
    let texts = e["texts"].as_array().unwrap();
    for (i, t) in texts.iter().enumerate() {
        let t = t.as_str().unwrap();
        let got: Vec<i64> = sp.encode(t.as_bytes()).into_iter().map(i64::from).collect();
        assert_eq!(got, ids(&e["encode_raw"][i]), "encode {t:?}");
        let raw: Vec<u32> = ids(&e["encode_raw"][i]).iter().map(|&x| x as u32).collect();
        assert_eq!(
            sp.decode(&raw),
            e["decode_raw"][i].as_str().unwrap(),
            "decode {t:?}"
        );
    }
}

#[test]
fn tokenize_cases() {
    let e = expected();
    let model = dir().join("spm.model");
    let texts = e["texts"].as_array().unwrap();
    for case in e["cases"].as_array().unwrap() {
        let pad = match &case["pad_value"] {
            Json::String(s) => format!("{s:?}"),
            v => v.to_string(),
        };
        let lower = if case["lower"].as_bool().unwrap() {
            "True"
        } else {
            "False"
        };
        let spec = format!(
            "tokenize(max_len={}, eos={:?}, lower={lower}, pad_value={pad}, model={:?}, inkey=\"texts\")",
            case["max_len"],
            case["eos"].as_str().unwrap(),
            model.display().to_string()
        );
        let pp = Pipeline::build(&spec, OPS).unwrap();
        for (i, t) in texts.iter().enumerate() {
            let mut ex = Example::new();
            let text = t.as_str().unwrap().as_bytes().to_vec();
            ex.insert("texts".into(), Value::Bytes(Array::scalar(text)));
            pp.apply(&mut ex, &mut Rng::new(0, 0)).unwrap();
            let Value::I64(got) = &ex["labels"] else {
                panic!("labels are not integers")
            };
            assert_eq!(got.data, ids(&case["tokens"][i]), "{spec} on {t:?}");
        }
    }
}

/// 2000 random texts through two models trained with the SentencePiece library
/// (`tests/golden/sentencepiece`): byte fallback, user-defined symbols, NFKC rules; and no
/// byte fallback with identity rules, no dummy prefix and kept whitespace.
#[test]
fn random_texts_match_the_sentencepiece_library() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/sentencepiece");
    let e: Json =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let texts = e["texts"].as_array().unwrap();
    for name in ["bytes", "plain"] {
        let sp = SentencePiece::open(dir.join(format!("{name}.model"))).unwrap();
        let mut checked = 0;
        for (i, t) in texts.iter().enumerate() {
            let t = t.as_str().unwrap();
            let want = ids(&e[name]["ids"][i]);
            let got: Vec<i64> = sp.encode(t.as_bytes()).into_iter().map(i64::from).collect();
            assert_eq!(got, want, "{name}: encode {t:?}");
            let raw: Vec<u32> = want.iter().map(|&x| x as u32).collect();
            assert_eq!(
                sp.decode(&raw),
                e[name]["decoded"][i].as_str().unwrap(),
                "{name}: decode {t:?}"
            );
            checked += 1;
        }
        assert_eq!(checked, 2000);
    }
}

/// A missing file, a file that is not a model, and a truncated model give errors that name
/// the file and say what is wrong (no panic).
#[test]
fn missing_and_corrupt_models_are_errors() {
    let missing = SentencePiece::open("/nonexistent/spm.model").unwrap_err();
    assert!(missing.contains("/nonexistent/spm.model"), "{missing}");
    let bytes = std::fs::read(dir().join("spm.model")).unwrap();
    let tmp = std::env::temp_dir().join(format!("bv-spm-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for (name, data) in [
        ("text.model", b"this is not a protobuf".to_vec()),
        ("truncated.model", bytes[..bytes.len() / 2].to_vec()),
        ("empty.model", Vec::new()),
    ] {
        let p = tmp.join(name);
        std::fs::write(&p, data).unwrap();
        let err = SentencePiece::open(&p).unwrap_err();
        assert!(
            err.contains(name) && err.contains("not a SentencePiece model"),
            "{err}"
        );
    }
    let err = Pipeline::build(
        "tokenize(max_len=4, eos=\"yes\", model=\"c4_en\", inkey=\"t\")",
        OPS,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("cc_en.32000/sentencepiece.model") && err.contains("BV_VOCAB_DIR"),
        "{err}"
    );
}

/// Texts longer than `max_len` are cut as big_vision cuts them (not an error): with
/// `sticky` the last id stays EOS.
#[test]
fn long_texts_are_truncated() {
    let model = dir().join("spm.model").display().to_string();
    let sp = SentencePiece::open(&model).unwrap();
    let text = "the covered software of a particular contributor ".repeat(20);
    let full: Vec<i64> = sp
        .encode(text.as_bytes())
        .into_iter()
        .map(i64::from)
        .collect();
    assert!(full.len() > 40);
    for (eos, last) in [("sticky", 1), ("yes", full[7]), ("none", full[7])] {
        let spec = format!("tokenize(max_len=8, eos={eos:?}, model={model:?}, inkey=\"t\")");
        let mut ex = Example::new();
        ex.insert(
            "t".into(),
            Value::Bytes(Array::scalar(text.clone().into_bytes())),
        );
        Pipeline::build(&spec, OPS)
            .unwrap()
            .apply(&mut ex, &mut Rng::new(0, 0))
            .unwrap();
        let Value::I64(got) = &ex["labels"] else {
            panic!()
        };
        assert_eq!(&got.data[..7], &full[..7], "{eos}");
        assert_eq!(got.data[7], last, "{eos}");
    }
}
