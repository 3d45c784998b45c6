//! `big_vision_metrics.txt`: one JSON line per step that measured anything,
//! `{"step": 100, "training_loss": 2.3, "global_schedule": 0.5, ...}`, with big_vision's
//! metric names.
//!
//! Non-finite values are written as `null` (Python's json writes the non-JSON `NaN`).
//! On resume, lines for steps after the restored checkpoint are dropped first (all lines
//! when a run starts from scratch), so a run killed and resumed any number of times logs
//! each step once, provided a step's line is written before its checkpoint.

use std::path::{Path, PathBuf};

use crate::storage::{self, Appender};

/// The metrics file name in the workdir.
pub const METRICS_FILE: &str = "big_vision_metrics.txt";

/// A metrics file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A complete line that is not a JSON object with an integer `step`.
    #[error("{}:{line}: not a metrics record: {msg}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

/// One line of the metrics file.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub step: u64,
    /// Every other key, sorted by name; `None` for a value written as null.
    pub values: Vec<(String, Option<f64>)>,
}

/// Parses one line; `None` for an incomplete or malformed one.
fn parse_line(line: &str) -> Result<Record, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let step = obj
        .get("step")
        .and_then(|s| s.as_u64())
        .ok_or("no integer \"step\"")?;
    let values = obj
        .iter()
        .filter(|(k, _)| *k != "step")
        .map(|(k, v)| (k.clone(), v.as_f64()))
        .collect();
    Ok(Record { step, values })
}

/// Reads every record of a metrics file. A final line without its newline (a write cut
/// short by a kill) is ignored; any other malformed line is an error naming it.
pub fn read_metrics(path: impl AsRef<Path>) -> Result<Vec<Record>, MetricsError> {
    let path = path.as_ref();
    let bytes = storage::read(path).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    complete
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_line(l).map_err(|msg| MetricsError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                msg,
            })
        })
        .collect()
}

/// Writes `big_vision_metrics.txt` as train.py's `BigVisionMetricWriter` does: measure
/// during a step, then one line at `step_end`.
pub struct MetricWriter {
    path: PathBuf,
    file: Appender,
    step: u64,
    line: Vec<(String, f64)>,
    /// Where the lines of an earlier run went when this one started from scratch.
    backup: Option<(PathBuf, usize)>,
}

impl MetricWriter {
    /// Opens `workdir/big_vision_metrics.txt` for a run that continues after the checkpoint
    /// of `resume_step` (`None` for a run from scratch): lines of later steps, and a cut-off
    /// last line, are removed. A run from scratch starts an empty file and keeps the lines
    /// of an earlier run in `big_vision_metrics.txt.old` (see [`Self::backup`]).
    pub fn open(workdir: impl AsRef<Path>, resume_step: Option<u64>) -> Result<Self, MetricsError> {
        let path = workdir.as_ref().join(METRICS_FILE);
        let io = |source| MetricsError::Io {
            path: path.clone(),
            source,
        };
        let mut backup = None;
        if let Some(text) = storage::read_opt(&path).map_err(io)? {
            let mut kept = String::new();
            let mut dropped = 0;
            for line in String::from_utf8_lossy(&text).lines() {
                match parse_line(line) {
                    Ok(r) if resume_step.is_some_and(|s| r.step <= s) => {
                        kept.push_str(line);
                        kept.push('\n');
                    }
                    Ok(_) => dropped += 1,
                    Err(_) => {}
                }
            }
            if resume_step.is_none() && dropped > 0 {
                let old = path.with_extension("txt.old");
                let tmp = path.with_extension("old.tmp");
                storage::write_via(&tmp, &old, &text).map_err(|source| MetricsError::Io {
                    path: old.clone(),
                    source,
                })?;
                backup = Some((old, dropped));
            }
            storage::write_via(&path.with_extension("txt.tmp"), &path, kept.as_bytes())
                .map_err(io)?;
        }
        let file = Appender::open(&path).map_err(io)?;
        Ok(MetricWriter {
            path,
            file,
            step: 0,
            line: Vec::new(),
            backup,
        })
    }

    /// Where the lines of an earlier run were kept, and how many, when this run started
    /// from scratch over them.
    pub fn backup(&self) -> Option<(&Path, usize)> {
        self.backup.as_ref().map(|(p, n)| (p.as_path(), *n))
    }

    /// Starts collecting the measurements of `step`.
    pub fn step_start(&mut self, step: u64) {
        self.step = step;
        self.line.clear();
    }

    /// Records one value (`training_loss`, `val/prec@1`, ...) for the current step.
    pub fn measure(&mut self, name: &str, value: f64) {
        self.line.push((name.to_string(), value));
    }

    /// Writes the step's line, if anything was measured.
    pub fn step_end(&mut self) -> Result<(), MetricsError> {
        if self.line.is_empty() {
            return Ok(());
        }
        let mut s = format!("{{\"step\": {}", self.step);
        for (k, v) in self.line.drain(..) {
            let v = serde_json::Number::from_f64(v).map_or("null".to_string(), |n| n.to_string());
            s.push_str(&format!(", {}: {v}", serde_json::Value::String(k)));
        }
        s.push_str("}\n");
        self.file
            .append(s.as_bytes())
            .map_err(|source| MetricsError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_big_vision_lines_and_drops_later_steps_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricWriter::open(dir.path(), None).unwrap();
        for step in 1..=4 {
            w.step_start(step);
            if step != 3 {
                w.measure("training_loss", 1.0 / step as f64);
                w.measure("val/prec@1", 0.5);
            }
            w.step_end().unwrap();
        }
        w.step_start(5);
        w.measure("l2_grads", f64::NAN);
        w.step_end().unwrap();
        let path = dir.path().join(METRICS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"step": 1, "training_loss": 1.0, "val/prec@1": 0.5}"#
        );
        assert_eq!(lines[3], r#"{"step": 5, "l2_grads": null}"#);

        // Killed mid-write after step 5, resumed from the checkpoint of step 2.
        std::fs::write(&path, format!("{text}{{\"step\": 6, \"trai")).unwrap();
        let mut w = MetricWriter::open(dir.path(), Some(2)).unwrap();
        w.step_start(3);
        w.measure("training_loss", 0.25);
        w.step_end().unwrap();
        let steps: Vec<u64> = read_metrics(&path)
            .unwrap()
            .iter()
            .map(|r| r.step)
            .collect();
        assert_eq!(steps, vec![1, 2, 3]);

        // Started from scratch again: every line goes.
        MetricWriter::open(dir.path(), None).unwrap();
        assert!(read_metrics(&path).unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        std::fs::write(&path, "{\"step\": 1}\n[1, 2]\n").unwrap();
        let e = read_metrics(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("big_vision_metrics.txt:2: not a metrics record: not a JSON object"),
            "{e}"
        );
        std::fs::write(&path, "{\"step\": 1}\n{\"step\": 2, \"x\"").unwrap();
        assert_eq!(read_metrics(&path).unwrap().len(), 1);
    }
}
