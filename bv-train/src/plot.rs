//! `bv-train plot WORKDIR`: the curves of `big_vision_metrics.txt` in one SVG or PNG, three
//! panels: losses (training and eval), the schedule multipliers (`global_schedule*`), and
//! the other eval metrics (`val/prec@1`, ...).
//!
//! Text is laid out (and, in PNGs, drawn) with an embedded font, so plotting needs no
//! system fonts or font libraries.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics::{read_metrics, MetricsError, Record, METRICS_FILE};

/// A plot that cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The metrics file is missing or malformed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Only SVG and PNG output are built in.
    #[error("{}: unsupported output format; use a .svg or .png file name", .0.display())]
    Format(PathBuf),
    /// Nothing to draw yet.
    #[error("{}: no metrics logged yet", .0.display())]
    Empty(PathBuf),
    /// The drawing backend failed (e.g. the output file cannot be written).
    #[error("{}: {msg}", path.display())]
    Draw { path: PathBuf, msg: String },
}

/// One named curve: (step, value) points.
type Series = (String, Vec<(f64, f64)>);

/// The curves of `key`s accepted by `pick`, each with its finite points.
fn series(records: &[Record], pick: impl Fn(&str) -> bool) -> Vec<Series> {
    let mut names: Vec<&str> = records
        .iter()
        .flat_map(|r| r.values.iter().map(|(k, _)| k.as_str()))
        .filter(|k| pick(k))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let points = records
                .iter()
                .filter_map(|r| {
                    let v = r.values.iter().find(|(k, _)| k == name)?.1?;
                    v.is_finite().then_some((r.step as f64, v))
                })
                .collect();
            (name.to_string(), points)
        })
        .filter(|(_, p): &Series| !p.is_empty())
        .collect()
}

fn is_eval(k: &str) -> bool {
    k.contains('/') && !k.starts_with("z/") && !k.starts_with("y/") && !k.starts_with("img/")
}

/// The size of the picture, in pixels.
const SIZE: (u32, u32) = (900, 900);

/// Registers the embedded font as the plots' `sans-serif` (once per process).
fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .unwrap_or_else(|_| panic!("the embedded Ubuntu Light font parses"));
    });
}

/// Draws the curves of `workdir/big_vision_metrics.txt` to `out` (default
/// `workdir/metrics.svg`), as SVG or, for a `.png` name, PNG; returns the file written.
pub fn plot(workdir: impl AsRef<Path>, out: Option<&Path>) -> Result<PathBuf, PlotError> {
    let workdir = workdir.as_ref();
    let out = out.map_or_else(|| workdir.join("metrics.svg"), Path::to_path_buf);
    let png = match out.extension().and_then(|e| e.to_str()) {
        Some("svg") => false,
        Some("png") => true,
        _ => return Err(PlotError::Format(out)),
    };
    let metrics = workdir.join(METRICS_FILE);
    let records = read_metrics(&metrics)?;
    let panels = [
        (
            "loss",
            series(&records, |k| {
                k == "training_loss" || (is_eval(k) && k.ends_with("/loss"))
            }),
        ),
        (
            "schedule multiplier",
            series(&records, |k| k.starts_with("global_schedule")),
        ),
        (
            "eval metrics",
            series(&records, |k| is_eval(k) && !k.ends_with("/loss")),
        ),
    ];
    if panels.iter().all(|(_, s)| s.is_empty()) {
        return Err(PlotError::Empty(metrics));
    }
    let max_step = records.iter().map(|r| r.step).max().unwrap_or(1).max(1) as f64;
    let failed = |msg: String| PlotError::Draw {
        path: out.clone(),
        msg,
    };
    register_font();
    if png {
        let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
        draw(
            BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area(),
            &panels,
            max_step,
        )
        .map_err(failed)?;
        write_png(&out, &rgb).map_err(failed)?;
    } else {
        draw(
            SVGBackend::new(&out, SIZE).into_drawing_area(),
            &panels,
            max_step,
        )
        .map_err(failed)?;
    }
    Ok(out)
}

/// Draws the panels onto `root`, one above the other, and finishes the picture.
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[(&str, Vec<Series>)],
    max_step: f64,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    for ((title, curves), area) in panels.iter().zip(root.split_evenly((panels.len(), 1))) {
        let (lo, hi) = curves
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(_, v)| *v))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.05).max(1e-9);
        let mut chart = ChartBuilder::on(&area)
            .caption(*title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_step, (lo - pad)..(hi + pad))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (name, points)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        if !curves.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))
}

/// Encodes an RGB picture of [`SIZE`] as an 8-bit PNG file.
fn write_png(path: &Path, rgb: &[u8]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), SIZE.0, SIZE.1);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| e.to_string())?;
    w.write_image_data(rgb).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())
}
