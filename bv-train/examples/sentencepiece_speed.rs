//! Encoding speed of bv's SentencePiece against the SentencePiece library (its Python
//! package, `benches/sentencepiece_speed.py`), on the same model and texts: the 2000 texts of
//! `tests/golden/sentencepiece/expected.json` (`bytes.model`) and the 2000 lines of
//! big_vision's license texts in `tests/golden/siglip/tokenizer` (`spm.model`), each encoded
//! 20 times; best of 5 rounds.
//!
//!   cargo run --release -p bv-train --example sentencepiece_speed
//!
//! Prints one JSON line per model: texts, bytes, best seconds, texts per second.

use std::path::PathBuf;
use std::time::Instant;

use bv_train::pp::sentencepiece::SentencePiece;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden");
    let read = |p: PathBuf| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        Ok(serde_json::from_slice(&std::fs::read(p)?)?)
    };
    let cases = [
        (
            "sentencepiece/bytes.model",
            read(root.join("sentencepiece/expected.json"))?,
        ),
        (
            "siglip/tokenizer/spm.model",
            read(root.join("siglip/tokenizer/expected.json"))?,
        ),
    ];
    for (model, json) in cases {
        let sp = SentencePiece::open(root.join(model))?;
        let texts: Vec<String> = json["texts"]
            .as_array()
            .ok_or("no texts")?
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let bytes: usize = texts.iter().map(String::len).sum::<usize>() * 20;
        let mut best = f64::INFINITY;
        let mut ids = 0usize;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..20 {
                for text in &texts {
                    ids += sp.encode(text.as_bytes()).len();
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        let n = texts.len() * 20;
        println!(
            "{{\"impl\": \"bv\", \"model\": \"{model}\", \"texts\": {n}, \"bytes\": {bytes}, \"best_s\": {best:.4}, \"texts_per_s\": {:.0}, \"ids\": {ids}}}",
            n as f64 / best
        );
    }
    Ok(())
}
