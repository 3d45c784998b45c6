//! `bv-train plot` on a synthetic metrics file in big_vision's format.

use std::process::Command;

#[test]
fn plot_draws_loss_schedule_and_eval_curves() {
    let w = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for step in 1..=50u32 {
        let s = f64::from(step);
        text.push_str(&format!(
            "{{\"step\": {step}, \"training_loss\": {}, \"global_schedule\": {}, \"img/sec/core\": 100.0}}\n",
            2.3 / s.sqrt(),
            (s / 10.0).min(1.0)
        ));
        if step % 10 == 0 {
            text.push_str(&format!(
                "{{\"step\": {step}, \"val/loss\": {}, \"val/prec@1\": {}, \"z/secs/eval/val\": 1.0}}\n",
                2.0 / s.sqrt(),
                0.5 + s / 200.0
            ));
        }
    }
    std::fs::write(w.path().join("big_vision_metrics.txt"), text).unwrap();
    let out = w.path().join("curves.svg");
    let run = Command::new(env!("CARGO_BIN_EXE_bv-train"))
        .arg("plot")
        .arg(w.path())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
    for name in [
        "training_loss",
        "val/loss",
        "global_schedule",
        "val/prec@1",
        "step",
    ] {
        assert!(svg.contains(name), "{name} missing from the plot");
    }
    assert!(!svg.contains("z/secs"), "timings are not eval curves");
    assert!(svg.matches("<polyline").count() >= 4, "one line per curve");

    let run = Command::new(env!("CARGO_BIN_EXE_bv-train"))
        .args(["plot", "/nonexistent-workdir"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("/nonexistent-workdir/big_vision_metrics.txt"),
        "{err}"
    );
}
