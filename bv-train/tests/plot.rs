//! `bv-train plot` on a synthetic metrics file in big_vision's format.

use std::ffi::OsStr;
use std::process::{Command, Output};

/// Runs `bv-train plot ARGS...`.
fn plot<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bv-train"))
        .arg("plot")
        .args(args)
        .output()
        .unwrap()
}

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
    let run = plot(&[w.path().as_os_str(), "--out".as_ref(), out.as_os_str()]);
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

    // PNG: decodes to the picture's size, white background with coloured curves and
    // dark text on it.
    let png_path = w.path().join("curves.png");
    let run = plot(&[w.path().as_os_str(), "--out".as_ref(), png_path.as_os_str()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (900, 900));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    let white = pixels
        .iter()
        .filter(|p| p.iter().all(|&c| c == 255))
        .count();
    let dark = pixels.iter().filter(|p| p.iter().all(|&c| c < 80)).count();
    let coloured = pixels
        .iter()
        .filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() > 100)
        .count();
    assert!(white > pixels.len() / 2, "mostly background: {white}");
    assert!(dark > 2000, "axes and text: {dark} dark pixels");
    assert!(coloured > 2000, "curves: {coloured} coloured pixels");

    let run = plot(&[w.path().to_str().unwrap(), "--out", "x.pdf"]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("use a .svg or .png file name"), "{err}");

    let run = plot(&["/nonexistent-workdir"]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("/nonexistent-workdir/big_vision_metrics.txt"),
        "{err}"
    );
}
