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
