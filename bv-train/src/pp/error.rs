//! Errors of pp strings (with the column) and of pp ops applied to examples.

/// What went wrong while building or running a pp pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PpError {
    /// The string does not parse: fix the text at the column shown.
    #[error("pp '{spec}', column {col}: {msg}")]
    Parse {
        /// The pipeline string.
        spec: String,
        /// 1-based column.
        col: usize,
        /// What was expected.
        msg: String,
    },
    /// No op of that name; the nearest known names are suggested (`bv-train pp --list`).
    #[error("pp '{spec}', column {col}: unknown op '{name}'{}", suggest(.suggestions))]
    UnknownOp {
        /// The pipeline string.
        spec: String,
        /// 1-based column of the name.
        col: usize,
        /// The unknown name.
        name: String,
        /// Known names close to it.
        suggestions: Vec<String>,
    },
    /// The op exists but its arguments are wrong.
    #[error("pp '{spec}', column {col}: {op}: {msg}")]
    Args {
        /// The pipeline string.
        spec: String,
        /// 1-based column of the op.
        col: usize,
        /// The op name.
        op: String,
        /// Which argument and why.
        msg: String,
    },
    /// The op failed on an example (missing key, wrong dtype, undecodable image...).
    #[error("pp op {op}: {msg}")]
    Apply {
        /// The op as written, e.g. `resize(224)`.
        op: String,
        /// What was wrong with the input.
        msg: String,
    },
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        "; `bv-train pp --list` shows the known ops".into()
    } else {
        format!("; did you mean {}?", s.join(", "))
    }
}
