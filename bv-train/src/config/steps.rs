//! big_vision's step arithmetic: `utils.steps` (a length given in steps, epochs, examples or
//! percent of the run, turned into steps) and `utils.itstime` (is this step due?).

/// One length of a config, `{prefix}_{steps|epochs|examples|percent}`; negative = unset.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lengths<'a> {
    /// The key prefix (`total`, `warmup`, `log_training`, ...), for messages.
    pub prefix: &'a str,
    pub steps: Option<f64>,
    pub epochs: Option<f64>,
    pub examples: Option<f64>,
    pub percent: Option<f64>,
}

/// A length that cannot be turned into steps.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StepsError {
    /// More than one unit was given for the same length.
    #[error("only one of {0} may be set")]
    Ambiguous(String),
    /// The unit needs a quantity that is not known here.
    #[error("{key} needs {what}")]
    Needs { key: String, what: &'static str },
    /// `*_percent` outside [0, 1].
    #[error("{key} = {value} is not a fraction in [0, 1]")]
    Percent { key: String, value: f64 },
    /// `*_steps` that is not a whole number.
    #[error("{key} = {value} is not a whole number of steps")]
    Fractional { key: String, value: f64 },
}

impl Lengths<'_> {
    /// The length in steps as `utils.steps` computes it, or `None` when unset. Conversions
    /// round half to even (Python's `round`) and give at least 1 unless the value is 0.
    pub fn resolve(
        &self,
        batch_size: Option<u64>,
        data_size: Option<u64>,
        total_steps: Option<u64>,
    ) -> Result<Option<u64>, StepsError> {
        let set: Vec<(&str, f64)> = [
            ("steps", self.steps),
            ("examples", self.examples),
            ("epochs", self.epochs),
            ("percent", self.percent),
        ]
        .into_iter()
        .filter_map(|(unit, v)| v.filter(|v| *v >= 0.0).map(|v| (unit, v)))
        .collect();
        let key = |unit: &str| format!("{}_{unit}", self.prefix);
        let (unit, value) = match set.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            many => {
                let names: Vec<String> = many.iter().map(|(u, _)| key(u)).collect();
                return Err(StepsError::Ambiguous(names.join(", ")));
            }
        };
        let needs = |what| StepsError::Needs {
            key: key(unit),
            what,
        };
        let to_integer = |x: f64| {
            if x == 0.0 {
                0
            } else {
                x.round_ties_even().max(1.0) as u64
            }
        };
        let steps = match unit {
            "steps" => {
                if value.fract() != 0.0 {
                    return Err(StepsError::Fractional {
                        key: key(unit),
                        value,
                    });
                }
                value as u64
            }
            "examples" => {
                to_integer(value / batch_size.ok_or_else(|| needs("the batch size"))? as f64)
            }
            "epochs" => {
                let bs = batch_size.ok_or_else(|| needs("the batch size"))?;
                let n = data_size.ok_or_else(|| needs("the dataset size"))?;
                to_integer(value * (n as f64 / bs as f64))
            }
            _ => {
                if value > 1.0 {
                    return Err(StepsError::Percent {
                        key: key(unit),
                        value,
                    });
                }
                to_integer(
                    value * total_steps.ok_or_else(|| needs("the total number of steps"))? as f64,
                )
            }
        };
        Ok(Some(steps))
    }
}

/// `utils.itstime`: whether something that happens every `every` steps is due at `step` of a
/// run of `total` steps: on multiples of `every` (unless within a quarter of `every` of the
/// end), on the last step if `last`, on step 1 if `first`. Never when `every` is 0 or unset.
pub fn itstime(step: u64, every: Option<u64>, total: u64, first: bool, last: bool) -> bool {
    let Some(every) = every.filter(|e| *e > 0) else {
        return false;
    };
    let close_to_last = (step.abs_diff(total) as f64) < 0.25 * every as f64;
    (step.is_multiple_of(every) && !close_to_last)
        || (last && step == total)
        || (first && step == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(
        steps: Option<f64>,
        epochs: Option<f64>,
        examples: Option<f64>,
        pct: Option<f64>,
    ) -> Lengths<'static> {
        Lengths {
            prefix: "total",
            steps,
            epochs,
            examples,
            percent: pct,
        }
    }

    /// Expected values computed by hand with Python's `utils.steps` rules.
    #[test]
    fn matches_utils_steps() {
        let r = |l: Lengths| l.resolve(Some(1024), Some(1_268_355), Some(1000));
        // vit_s16_i1k: 90 epochs of train[:99%] at batch 1024 -> 111,477 steps (spec §6.3).
        assert_eq!(r(len(None, Some(90.0), None, None)), Ok(Some(111_477)));
        assert_eq!(r(len(Some(7.0), None, None, None)), Ok(Some(7)));
        assert_eq!(r(len(None, None, Some(2560.0), None)), Ok(Some(2))); // 2.5 -> 2 (half to even)
        assert_eq!(r(len(None, None, Some(3584.0), None)), Ok(Some(4))); // 3.5 -> 4
        assert_eq!(r(len(None, None, Some(10.0), None)), Ok(Some(1))); // at least one step
        assert_eq!(r(len(None, Some(0.0), None, None)), Ok(Some(0))); // explicit zero
        assert_eq!(r(len(None, None, None, Some(0.25))), Ok(Some(250)));
        assert_eq!(r(len(Some(-1.0), Some(1.0), None, None)), Ok(Some(1239))); // negative = unset
        assert_eq!(r(len(None, None, None, None)), Ok(None));
    }

    #[test]
    fn errors_name_the_keys() {
        let e = len(Some(1.0), Some(1.0), None, None)
            .resolve(Some(8), Some(80), None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "only one of total_steps, total_epochs may be set"
        );
        let e = len(None, Some(1.0), None, None)
            .resolve(Some(8), None, None)
            .unwrap_err();
        assert_eq!(e.to_string(), "total_epochs needs the dataset size");
        let e = len(None, None, None, Some(2.0))
            .resolve(None, None, Some(5))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "total_percent = 2 is not a fraction in [0, 1]"
        );
        let e = len(Some(1.5), None, None, None)
            .resolve(None, None, None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "total_steps = 1.5 is not a whole number of steps"
        );
    }

    /// Hand-derived from `utils.itstime`.
    #[test]
    fn matches_utils_itstime() {
        let due = |every, total, first, last| -> Vec<u64> {
            (1..=total)
                .filter(|&s| itstime(s, every, total, first, last))
                .collect()
        };
        assert_eq!(due(Some(4), 10, true, true), vec![1, 4, 8, 10]);
        // 8 is within 0.25 * 4 = 1 of 9? |8 - 9| = 1, not < 1: kept.
        assert_eq!(due(Some(4), 9, false, true), vec![4, 8, 9]);
        // every 10 of 41: 40 is within 2.5 of 41, so dropped; the last step stays.
        assert_eq!(due(Some(10), 41, false, true), vec![10, 20, 30, 41]);
        assert_eq!(due(Some(10), 41, false, false), vec![10, 20, 30]);
        assert_eq!(due(None, 5, true, true), Vec::<u64>::new());
        assert_eq!(due(Some(0), 5, true, true), Vec::<u64>::new());
    }
}
