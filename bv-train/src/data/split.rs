//! TFDS split strings: `train`, `train[:99%]`, `train[99%:]`, `train[10:20]`, `train[-5:]`,
//! `train+test`, and `tfds.even_splits` for per-host shares.
//!
//! Percent boundaries resolve as TFDS's `_pct_to_abs_closest`: `int(round(pct * n / 100))` with
//! round-half-even; absolute boundaries follow Python slicing (negative from the end, clamped).

use super::error::{DataError, Result};

/// One bound of a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    Abs(i64),
    Pct(i64),
}

/// One `name[from:to]` term of a split string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitTerm {
    /// The split name, e.g. `train`.
    pub name: String,
    from: Option<Bound>,
    to: Option<Bound>,
}

/// A parsed split string: the union (`+`) of its terms, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitSpec {
    /// The string as given.
    pub spec: String,
    /// Its terms.
    pub terms: Vec<SplitTerm>,
}

/// A contiguous range `[start, end)` of examples of one split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitRange {
    /// The split name.
    pub name: String,
    /// First example.
    pub start: u64,
    /// One past the last example.
    pub end: u64,
}

impl SplitRange {
    /// Number of examples.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

fn parse_bound(spec: &str, s: &str) -> Result<Option<Bound>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let err = || DataError::Split {
        spec: spec.to_string(),
        msg: format!(
            "bound '{s}' is not an integer or an integer percent (e.g. `10`, `-5`, `99%`)"
        ),
    };
    if let Some(p) = s.strip_suffix('%') {
        let v: i64 = p.trim().parse().map_err(|_| err())?;
        if !(-100..=100).contains(&v) {
            return Err(DataError::Split {
                spec: spec.to_string(),
                msg: format!("percent {v}% is outside -100%..100%"),
            });
        }
        Ok(Some(Bound::Pct(v)))
    } else {
        Ok(Some(Bound::Abs(s.parse().map_err(|_| err())?)))
    }
}

impl SplitSpec {
    /// Parses a split string.
    pub fn parse(spec: &str) -> Result<Self> {
        let err = |msg: String| DataError::Split {
            spec: spec.to_string(),
            msg,
        };
        let mut terms = Vec::new();
        for part in spec.split('+') {
            let part = part.trim();
            let (name, slice) = match part.find('[') {
                Some(i) => {
                    let rest = part[i + 1..]
                        .strip_suffix(']')
                        .ok_or_else(|| err(format!("'{part}' has '[' without a closing ']'")))?;
                    (&part[..i], Some(rest))
                }
                None => (part, None),
            };
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err(format!(
                    "'{part}' needs a split name such as `train`, `test` or `validation`"
                )));
            }
            let (from, to) = match slice {
                None => (None, None),
                Some(s) => {
                    let (a, b) = s.split_once(':').ok_or_else(|| {
                        err(format!(
                            "slice '[{s}]' needs a ':' as in `[10:20]` or `[:99%]`"
                        ))
                    })?;
                    (parse_bound(spec, a)?, parse_bound(spec, b)?)
                }
            };
            terms.push(SplitTerm {
                name: name.to_string(),
                from,
                to,
            });
        }
        Ok(SplitSpec {
            spec: spec.to_string(),
            terms,
        })
    }

    /// Resolves the terms against split sizes; `size(name)` is `None` for an unknown split.
    pub fn resolve(
        &self,
        size: impl Fn(&str) -> Option<u64>,
        known: &[&str],
    ) -> Result<Vec<SplitRange>> {
        self.terms
            .iter()
            .map(|t| {
                let n = size(&t.name).ok_or_else(|| DataError::Split {
                    spec: self.spec.clone(),
                    msg: format!(
                        "no split '{}'; the dataset has: {}",
                        t.name,
                        known.join(", ")
                    ),
                })?;
                let abs = |b: Bound| -> i64 {
                    let v = match b {
                        Bound::Abs(v) => v,
                        Bound::Pct(p) => ((p as f64 * n as f64) / 100.0).round_ties_even() as i64,
                    };
                    let v = if v < 0 { v + n as i64 } else { v };
                    v.clamp(0, n as i64)
                };
                let start = t.from.map(abs).unwrap_or(0) as u64;
                let end = t.to.map(abs).unwrap_or(n as i64) as u64;
                Ok(SplitRange {
                    name: t.name.clone(),
                    start,
                    end: end.max(start),
                })
            })
            .collect()
    }
}

/// The share of host `index` of `count` hosts, as `tfds.even_splits(split, count)[index]`:
/// each range is cut into `count` contiguous parts, the first `len % count` one example larger.
/// With `drop_remainder`, every part has `len / count` examples.
pub fn even_split(
    ranges: &[SplitRange],
    index: usize,
    count: usize,
    drop_remainder: bool,
) -> Vec<SplitRange> {
    assert!(index < count, "host index {index} out of {count} hosts");
    ranges
        .iter()
        .map(|r| {
            let (len, k) = (r.len(), count as u64);
            let (base, rem) = (len / k, if drop_remainder { 0 } else { len % k });
            let i = index as u64;
            let start = r.start + i * base + i.min(rem);
            let size = base + u64::from(i < rem);
            SplitRange {
                name: r.name.clone(),
                start,
                end: start + size,
            }
        })
        .collect()
}

/// A read of part of one shard: skip `skip` records, then take `take`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRead {
    /// Split name.
    pub split: String,
    /// Shard index within the split.
    pub shard: usize,
    /// Records to skip at the shard's start.
    pub skip: u64,
    /// Records to read after those.
    pub take: u64,
}

/// The shard reads that cover `range`, given the split's shard lengths.
pub fn shard_reads(range: &SplitRange, shard_lengths: &[u64]) -> Vec<ShardRead> {
    let mut out = Vec::new();
    let mut first = 0u64;
    for (shard, &len) in shard_lengths.iter().enumerate() {
        let last = first + len;
        let (a, b) = (range.start.max(first), range.end.min(last));
        if a < b {
            out.push(ShardRead {
                split: range.name.clone(),
                shard,
                skip: a - first,
                take: b - a,
            });
        }
        first = last;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(spec: &str, n: u64) -> Vec<(u64, u64)> {
        SplitSpec::parse(spec)
            .unwrap()
            .resolve(
                |s| (s == "train" || s == "test").then_some(n),
                &["train", "test"],
            )
            .unwrap()
            .iter()
            .map(|r| (r.start, r.end))
            .collect()
    }

    #[test]
    fn tfds_slicing() {
        assert_eq!(resolve("train", 1000), [(0, 1000)]);
        assert_eq!(resolve("train[:99%]", 1000), [(0, 990)]);
        assert_eq!(resolve("train[99%:]", 1000), [(990, 1000)]);
        assert_eq!(resolve("train[10:20]", 1000), [(10, 20)]);
        assert_eq!(resolve("train[-5:]", 1000), [(995, 1000)]);
        assert_eq!(resolve("train[:-10%]", 1000), [(0, 900)]);
        assert_eq!(resolve("train[5:2000]", 1000), [(5, 1000)]);
        // 50% of 25 = 12.5 rounds half to even: 12 (Python's round).
        assert_eq!(resolve("train[:50%]", 25), [(0, 12)]);
        // 50% of 27 = 13.5 rounds to 14.
        assert_eq!(resolve("train[:50%]+test[50%:]", 27), [(0, 14), (14, 27)]);
    }

    #[test]
    fn bad_strings_are_explained() {
        for bad in [
            "train[:99",
            "train[1-2]",
            "[0:10]",
            "train[a:b]",
            "train[:101%]",
        ] {
            let e = SplitSpec::parse(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        let e = SplitSpec::parse("valid")
            .unwrap()
            .resolve(|_| None, &["train", "test"])
            .unwrap_err();
        assert!(e.to_string().contains("train, test"), "{e}");
    }

    #[test]
    fn even_splits_give_the_remainder_to_the_first_hosts() {
        let r = [SplitRange {
            name: "train".into(),
            start: 0,
            end: 11,
        }];
        let sizes: Vec<u64> = (0..3)
            .map(|i| even_split(&r, i, 3, false)[0].len())
            .collect();
        assert_eq!(sizes, [4, 4, 3]);
        assert_eq!(even_split(&r, 2, 3, false)[0].start, 8);
        assert_eq!(even_split(&r, 2, 3, true)[0].len(), 3);
    }

    #[test]
    fn shard_reads_cross_shards() {
        let r = SplitRange {
            name: "train".into(),
            start: 8,
            end: 25,
        };
        let reads = shard_reads(&r, &[10, 10, 10]);
        let got: Vec<_> = reads.iter().map(|s| (s.shard, s.skip, s.take)).collect();
        assert_eq!(got, [(0, 8, 2), (1, 0, 10), (2, 0, 5)]);
    }
}
