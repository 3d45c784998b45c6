//! What a run prints while it trains. On a terminal: a live line (step, loss, images per
//! second, ETA), "compiling…" until the first step is done, and notes above it. Otherwise
//! (nohup, CI, a log file): the notes, and one plain line per logged step.
//!
//! The ETA comes from the steps after the first one, whose time includes XLA's compile.

use std::cell::Cell;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The remaining time of a run, estimated from its steady-state steps.
#[derive(Clone, Copy, Debug)]
pub struct Eta {
    total: u64,
    /// When the first step after a (re)start was seen done, and its number.
    steady_from: Option<(Instant, u64)>,
}

impl Eta {
    /// An estimator for a run of `total` steps.
    pub fn new(total: u64) -> Eta {
        Eta {
            total,
            steady_from: None,
        }
    }

    /// Records that `step` is done at `now`; the first call marks the end of compilation.
    pub fn step_done(&mut self, step: u64, now: Instant) {
        self.steady_from.get_or_insert((now, step));
    }

    /// The time left after `step` at `now`, from the pace since the first step; `None` until
    /// a step after the first one is done.
    pub fn remaining(&self, step: u64, now: Instant) -> Option<Duration> {
        let (t0, s0) = self.steady_from?;
        let done = step.checked_sub(s0).filter(|d| *d > 0)?;
        let per_step = now.saturating_duration_since(t0).as_secs_f64() / done as f64;
        Some(Duration::from_secs_f64(
            per_step * self.total.saturating_sub(step) as f64,
        ))
    }
}

/// `1h 02m`, `3m 05s`, `12s`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// The progress output of one run.
pub struct Progress {
    bar: ProgressBar,
    total: u64,
    eta: Cell<Eta>,
}

impl Progress {
    /// Progress over steps `first_step + 1 ..= total_steps`, drawn on stderr when it is a
    /// terminal.
    pub fn new(total_steps: u64, first_step: u64) -> Progress {
        Progress::with_target(total_steps, first_step, ProgressDrawTarget::stderr())
    }

    fn with_target(total_steps: u64, first_step: u64, target: ProgressDrawTarget) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total_steps), target);
        bar.set_style(
            ProgressStyle::with_template("step {pos}/{len} {wide_bar} {msg}")
                .expect("a valid template"),
        );
        bar.set_position(first_step);
        bar.set_message("compiling…");
        bar.enable_steady_tick(Duration::from_millis(500));
        Progress {
            bar,
            total: total_steps,
            eta: Cell::new(Eta::new(total_steps)),
        }
    }

    /// Moves to `step`, showing the last logged loss. A throughput marks a logged step,
    /// which is also printed as a plain line when stderr is not a terminal.
    pub fn update(&self, step: u64, loss: Option<f64>, img_per_sec: Option<f64>) {
        let now = Instant::now();
        let mut eta = self.eta.get();
        eta.step_done(step, now);
        self.eta.set(eta);
        let msg = self.message(loss, img_per_sec, eta.remaining(step, now));
        if self.bar.is_hidden() {
            if img_per_sec.is_some() {
                eprintln!("step {step}/{}: {msg}", self.total);
            }
        } else {
            self.bar.set_position(step);
            self.bar.set_message(msg);
        }
    }

    fn message(
        &self,
        loss: Option<f64>,
        img_per_sec: Option<f64>,
        eta: Option<Duration>,
    ) -> String {
        let mut parts = Vec::new();
        if let Some(l) = loss {
            parts.push(format!("loss {l:.4}"));
        }
        if let Some(r) = img_per_sec {
            parts.push(format!("{r:.1} img/s"));
        }
        parts.push(format!(
            "ETA {}",
            eta.map_or("…".to_string(), short_duration)
        ));
        parts.join(", ")
    }

    /// Prints a line above the progress line (notes, eval results); plain stderr lines when
    /// stderr is not a terminal.
    pub fn note(&self, text: &str) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// Leaves the final state on screen.
    pub fn finish(&self) {
        self.bar.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20 s run: the first step takes 10 s (compilation), then 0.1 s per step. The ETA
    /// is that of the remaining steps at 0.1 s, not the first step's pace.
    #[test]
    fn eta_leaves_out_the_first_step() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut eta = Eta::new(101);
        eta.step_done(1, at(10.0));
        assert_eq!(eta.remaining(1, at(10.0)), None);
        eta.step_done(11, at(11.0));
        let left = eta.remaining(11, at(11.0)).unwrap().as_secs_f64();
        assert!((left - 9.0).abs() < 1e-6, "{left}");
        // A resumed run: its first step is 51.
        let mut eta = Eta::new(101);
        eta.step_done(51, at(5.0));
        eta.step_done(61, at(6.0));
        let left = eta.remaining(61, at(6.0)).unwrap().as_secs_f64();
        assert!((left - 4.0).abs() < 1e-6, "{left}");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_secs(12)), "12s");
        assert_eq!(short_duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(short_duration(Duration::from_secs(3720)), "1h 02m");
    }

    #[test]
    fn the_first_step_shows_compiling() {
        let p = Progress::with_target(30, 0, ProgressDrawTarget::hidden());
        assert_eq!(p.bar.message(), "compiling…");
        p.update(1, Some(2.5), Some(100.0));
        assert_eq!(p.message(Some(2.5), None, None), "loss 2.5000, ETA …");
    }
}
