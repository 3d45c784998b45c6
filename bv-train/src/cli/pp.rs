//! `bv-train pp [--list | OP | PIPELINE]`: the registered pp ops, one op's arguments, or a
//! pp string checked op by op.

use crate::error::TrainError;
use crate::pp::{self, Pipeline, OPS};

/// Lists the pp ops, describes one, or checks a pp string.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    bv-train pp --list\n  \
    bv-train pp inception_crop\n  \
    bv-train pp 'decode|resize(224)|value_range(-1, 1)|onehot(1000, key=\"label\", key_result=\"labels\")'")]
pub struct PpArgs {
    /// An op name (its arguments and doc are printed), or a whole pp string (each op is
    /// built and printed; an error gives the column).
    pub what: Option<String>,
    /// Print every op with its arguments, module and doc (the default without OP).
    #[arg(long, conflicts_with = "what")]
    pub list: bool,
}

impl PpArgs {
    /// Prints the list, the op's description, or the checked pipeline.
    pub fn run(self) -> Result<(), TrainError> {
        let Some(what) = self.what else {
            print!("{}", pp::list(OPS));
            return Ok(());
        };
        if let Some(def) = OPS.iter().find(|d| d.name == what) {
            print!("{}", pp::describe(def));
            return Ok(());
        }
        Pipeline::build(&what, OPS)?;
        for call in pp::parse::parse(&what)? {
            let def = OPS
                .iter()
                .find(|d| d.name == call.name)
                .expect("the pipeline built");
            println!(
                "column {}: {}  [{}]",
                call.col,
                pp::signature(def),
                def.module
            );
        }
        Ok(())
    }
}
