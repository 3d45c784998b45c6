//! big_vision's `sharding_strategy`: `[(regex, "tactic|tactic"), ...]` over parameter and
//! optimizer-state names, producing one [`PartitionSpec`] per leaf.
//!
//! Patterns must match a whole name (`re.fullmatch`); each leaf is handled by the first
//! pattern that matches it; the tactics of that pattern refine its spec left to right,
//! starting from fully replicated. The tactics are those of `big_vision/sharding.py`:
//!
//! | tactic | effect |
//! |---|---|
//! | `replicate()` | asserts the spec is still fully replicated |
//! | `fsdp(axis, min_size_to_shard_mb=4)` | above the size threshold, splits the largest dimension divisible by the axis size and not yet split (ties: the later dimension) |
//! | `shard_dim(axis, dim, ignore_ndim_error=False)` | splits dimension `dim` (negative counts from the end) |

use regex::Regex;

use super::{Mesh, NamedSharding, PartitionSpec, ShardingError};
use crate::DType;

/// A named array to find a sharding for.
#[derive(Clone, Copy, Debug)]
pub struct Leaf<'a> {
    /// The `/`-joined name, e.g. `params/Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel`.
    pub name: &'a str,
    pub shape: &'a [i64],
    pub dtype: DType,
}

/// A literal argument of a tactic.
#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Tuple(Vec<Lit>),
}

/// A tactic's parsed arguments.
struct Args {
    positional: Vec<Lit>,
    keyword: Vec<(String, Lit)>,
}

impl Args {
    fn get(&self, pos: usize, name: &str) -> Option<&Lit> {
        self.keyword
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| self.positional.get(pos))
    }
}

/// One refinement step of a spec.
type Update = Box<dyn Fn(Vec<Vec<String>>, &Mesh, &Leaf) -> Result<Vec<Vec<String>>, String>>;

/// A tactic in the registry: its name, documentation and factory.
pub struct TacticDef {
    pub name: &'static str,
    pub doc: &'static str,
    make: fn(&Args) -> Result<Update, String>,
}

/// The tactics bv knows, as registered in big_vision's `shardings.*`.
pub const TACTICS: &[TacticDef] = &[
    TacticDef {
        name: "replicate",
        doc: "replicate(): keep the array whole on every device (an error if already split)",
        make: make_replicate,
    },
    TacticDef {
        name: "fsdp",
        doc: "fsdp(axis, min_size_to_shard_mb=4): split the largest divisible, unsplit dimension over `axis`",
        make: make_fsdp,
    },
    TacticDef {
        name: "shard_dim",
        doc: "shard_dim(axis, dim, ignore_ndim_error=False): split dimension `dim` over `axis`",
        make: make_shard_dim,
    },
];

fn axes_of(lit: Option<&Lit>) -> Result<Vec<String>, String> {
    match lit {
        Some(Lit::Str(s)) => Ok(vec![s.clone()]),
        Some(Lit::Tuple(v)) => v
            .iter()
            .map(|l| match l {
                Lit::Str(s) => Ok(s.clone()),
                other => Err(format!("axis names must be strings, got {other:?}")),
            })
            .collect(),
        Some(other) => Err(format!(
            "axis must be a string or a tuple of strings, got {other:?}"
        )),
        None => Err("missing argument `axis`".into()),
    }
}

fn make_replicate(_: &Args) -> Result<Update, String> {
    Ok(Box::new(|spec, _, leaf| {
        if spec.iter().all(|d| d.is_empty()) {
            Ok(spec)
        } else {
            Err(format!(
                "inconsistent sharding instructions: {} has spec {}, so it cannot be fully replicated",
                leaf.name,
                PartitionSpec(spec.clone())
            ))
        }
    }))
}

fn make_fsdp(args: &Args) -> Result<Update, String> {
    let axes = axes_of(args.get(0, "axis"))?;
    let min_mb = match args.get(1, "min_size_to_shard_mb") {
        None => 4.0,
        Some(Lit::Int(i)) => *i as f64,
        Some(Lit::Float(f)) => *f,
        Some(other) => {
            return Err(format!(
                "min_size_to_shard_mb must be a number, got {other:?}"
            ))
        }
    };
    Ok(Box::new(move |spec, mesh, leaf| {
        let mut size = 1usize;
        for a in &axes {
            size *= mesh
                .axis_size(a)
                .ok_or_else(|| format!("the mesh has no axis {a:?}"))?;
        }
        let bytes = leaf.shape.iter().product::<i64>() as f64 * leaf.dtype.size_in_bytes() as f64;
        if bytes <= min_mb * (1 << 20) as f64 {
            return Ok(spec);
        }
        // numpy's argsort of a short shape is stable; reversed, it visits the largest
        // dimensions first and, among equal sizes, the later dimension first.
        let mut order: Vec<usize> = (0..leaf.shape.len()).collect();
        order.sort_by_key(|&i| leaf.shape[i]);
        order.reverse();
        for i in order {
            if leaf.shape[i] % size as i64 == 0 && spec[i].is_empty() {
                let mut spec = spec;
                spec[i] = axes.clone();
                return Ok(spec);
            }
        }
        Ok(spec)
    }))
}

fn make_shard_dim(args: &Args) -> Result<Update, String> {
    let axes = axes_of(args.get(0, "axis"))?;
    let dim = match args.get(1, "dim") {
        Some(Lit::Int(d)) => *d,
        other => return Err(format!("dim must be an integer, got {other:?}")),
    };
    let ignore = match args.get(2, "ignore_ndim_error") {
        None => false,
        Some(Lit::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "ignore_ndim_error must be True or False, got {other:?}"
            ))
        }
    };
    Ok(Box::new(move |spec, _, leaf| {
        let rank = spec.len() as i64;
        if dim.abs() >= rank {
            return if ignore {
                Ok(spec)
            } else {
                Err(format!(
                    "cannot shard_dim({axes:?}, {dim}): {} has rank {rank}",
                    leaf.name
                ))
            };
        }
        let d = if dim < 0 { dim + rank } else { dim } as usize;
        if !spec[d].is_empty() {
            return Err(format!(
                "{} is already split along dimension {d}",
                leaf.name
            ));
        }
        let mut spec = spec;
        spec[d] = axes.clone();
        Ok(spec)
    }))
}

/// Computes the partition spec of every leaf under `strategy`.
pub fn infer(
    strategy: &[(String, String)],
    leaves: &[Leaf],
    mesh: &Mesh,
) -> Result<Vec<PartitionSpec>, ShardingError> {
    let mut compiled = Vec::with_capacity(strategy.len());
    for (pattern, tactic) in strategy {
        let rule = || format!("({pattern:?}, {tactic:?})");
        if pattern.starts_with('/') {
            return Err(ShardingError::Rule {
                rule: rule(),
                reason: "patterns must not start with '/'; names look like params/Transformer/..."
                    .into(),
            });
        }
        let re = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| ShardingError::Rule {
            rule: rule(),
            reason: e.to_string(),
        })?;
        let updates = parse_tactics(tactic).map_err(|reason| ShardingError::Rule {
            rule: rule(),
            reason,
        })?;
        compiled.push((re, updates, rule()));
    }
    leaves
        .iter()
        .map(|leaf| {
            let mut spec = vec![Vec::new(); leaf.shape.len()];
            if let Some((_, updates, rule)) =
                compiled.iter().find(|(re, _, _)| re.is_match(leaf.name))
            {
                for u in updates {
                    spec = u(spec, mesh, leaf).map_err(|reason| ShardingError::Rule {
                        rule: rule.clone(),
                        reason,
                    })?;
                }
            }
            let spec = PartitionSpec(spec);
            NamedSharding::new(mesh.clone(), spec.clone()).map_err(|e| ShardingError::Rule {
                rule: format!("for {}", leaf.name),
                reason: e.to_string(),
            })?;
            Ok(spec)
        })
        .collect()
}

/// Parses `fsdp(axis="data")|replicate()` into updates.
fn parse_tactics(text: &str) -> Result<Vec<Update>, String> {
    text.split('|')
        .map(|op| {
            let op = op.trim();
            let (name, rest) = op.split_once('(').unwrap_or((op, ")"));
            let body = rest
                .trim_end()
                .strip_suffix(')')
                .ok_or_else(|| format!("{op:?}: missing closing parenthesis"))?;
            let def = TACTICS
                .iter()
                .find(|t| t.name == name.trim())
                .ok_or_else(|| {
                    format!(
                        "unknown tactic {:?}; known: {}",
                        name.trim(),
                        TACTICS
                            .iter()
                            .map(|t| t.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let args = parse_args(body).map_err(|e| format!("{op:?}: {e}"))?;
            (def.make)(&args).map_err(|e| format!("{op:?}: {e}"))
        })
        .collect()
}

fn parse_args(body: &str) -> Result<Args, String> {
    let mut args = Args {
        positional: Vec::new(),
        keyword: Vec::new(),
    };
    for part in split_top(body) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match part.split_once('=') {
            Some((k, v)) if k.trim().chars().all(|c| c.is_alphanumeric() || c == '_') => {
                args.keyword
                    .push((k.trim().to_string(), parse_lit(v.trim())?));
            }
            _ => {
                if !args.keyword.is_empty() {
                    return Err("positional argument after keyword argument".into());
                }
                args.positional.push(parse_lit(part)?);
            }
        }
    }
    Ok(args)
}

/// Splits at commas outside brackets and quotes.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut quote, mut start, mut out) = (0i32, None, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('(' | '[', None) => depth += 1,
            (')' | ']', None) => depth -= 1,
            (',', None) if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_lit(s: &str) -> Result<Lit, String> {
    let s = s.trim();
    if let Some(inner) = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .or_else(|| s.strip_prefix('[').and_then(|r| r.strip_suffix(']')))
    {
        return split_top(inner)
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .map(parse_lit)
            .collect::<Result<_, _>>()
            .map(Lit::Tuple);
    }
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return Ok(Lit::Str(inner.to_string()));
        }
    }
    match s {
        "True" => return Ok(Lit::Bool(true)),
        "False" => return Ok(Lit::Bool(false)),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Lit::Int(i));
    }
    s.parse::<f64>()
        .map(Lit::Float)
        .map_err(|_| format!("cannot read the value {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh8() -> Mesh {
        Mesh::new(&[("data", 8)], &(0..8).collect::<Vec<_>>()).unwrap()
    }

    fn rules(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn spec(dims: &[Option<&str>]) -> PartitionSpec {
        PartitionSpec::of(dims)
    }

    // Expected specs follow big_vision/sharding.py's fsdp on the same shapes: 4 MiB is
    // 1,048,576 float32 elements.
    #[test]
    fn fsdp_splits_large_arrays_on_their_largest_divisible_dimension() {
        let leaves = [
            Leaf {
                name: "params/embedding/kernel",
                shape: &[16, 16, 3, 768],
                dtype: DType::F32,
            },
            Leaf {
                name: "params/Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel",
                shape: &[768, 3072],
                dtype: DType::F32,
            },
            Leaf {
                name: "params/Transformer/encoderblock_0/MlpBlock_0/Dense_0/bias",
                shape: &[3072],
                dtype: DType::F32,
            },
            Leaf {
                name: "params/head/kernel",
                shape: &[1024, 1024],
                dtype: DType::F32,
            },
            Leaf {
                name: "params/sq/kernel",
                shape: &[2048, 2048],
                dtype: DType::F32,
            },
            Leaf {
                name: "params/odd/kernel",
                shape: &[1001, 2049],
                dtype: DType::F32,
            },
        ];
        let specs = infer(&rules(&[(".*", r#"fsdp(axis="data")"#)]), &leaves, &mesh8()).unwrap();
        assert_eq!(
            specs[0],
            spec(&[None, None, None, None]),
            "2.25 MiB stays whole"
        );
        assert_eq!(
            specs[1],
            spec(&[None, Some("data")]),
            "9 MiB: largest dim 3072"
        );
        assert_eq!(specs[2], spec(&[None]));
        assert_eq!(
            specs[3],
            spec(&[None, None]),
            "exactly 4 MiB is not above the threshold"
        );
        assert_eq!(
            specs[4],
            spec(&[None, Some("data")]),
            "equal sizes: the later dimension"
        );
        assert_eq!(specs[5], spec(&[None, None]), "nothing divisible by 8");
    }

    #[test]
    fn first_matching_pattern_wins_and_tactics_chain() {
        let leaves = [
            Leaf {
                name: "params/head/kernel",
                shape: &[768, 1000],
                dtype: DType::F32,
            },
            Leaf {
                name: "opt/mu/head/kernel",
                shape: &[768, 1000],
                dtype: DType::F32,
            },
        ];
        let strategy = rules(&[
            ("params/head/.*", "replicate()"),
            (".*", "shard_dim('data', -1)|replicate()"),
        ]);
        let e = infer(&strategy, &leaves, &mesh8()).unwrap_err().to_string();
        assert!(
            e.contains("opt/mu/head/kernel has spec P(None, 'data')"),
            "{e}"
        );
        let strategy = rules(&[
            ("params/head/.*", "replicate()"),
            ("opt/.*", "shard_dim('data', 0)"),
        ]);
        let specs = infer(&strategy, &leaves, &mesh8()).unwrap();
        assert_eq!(
            specs,
            vec![spec(&[None, None]), spec(&[Some("data"), None])]
        );
    }

    #[test]
    fn a_spec_that_uses_an_axis_twice_is_rejected() {
        // big_vision's fsdp would add "data" to dimension 0 too; JAX then refuses the
        // NamedSharding. bv reports it with the rule.
        let leaf = [Leaf {
            name: "opt/mu/k",
            shape: &[768, 1000],
            dtype: DType::F32,
        }];
        let strategy = rules(&[(
            ".*",
            "shard_dim('data', -1)|fsdp(('data',), min_size_to_shard_mb=0)",
        )]);
        let e = infer(&strategy, &leaf, &mesh8()).unwrap_err().to_string();
        assert!(
            e.contains("axis \"data\" splits more than one dimension"),
            "{e}"
        );
    }

    #[test]
    fn bad_rules_are_explained() {
        let leaf = [Leaf {
            name: "params/a",
            shape: &[8],
            dtype: DType::F32,
        }];
        let e = infer(&rules(&[(".*", "fdsp('data')")]), &leaf, &mesh8())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown tactic \"fdsp\"; known: replicate, fsdp, shard_dim"),
            "{e}"
        );
        let e = infer(
            &rules(&["/params/.*".to_string()].map(|p| (p.leak() as &str, "replicate()"))),
            &leaf,
            &mesh8(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("must not start with '/'"), "{e}");
        let e = infer(
            &rules(&[(".*", "shard_dim('data', 0)|replicate()")]),
            &leaf,
            &mesh8(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot be fully replicated"), "{e}");
        let e = infer(&rules(&[(".*", "shard_dim('data', 1)")]), &leaf, &mesh8())
            .unwrap_err()
            .to_string();
        assert!(e.contains("has rank 1"), "{e}");
        assert!(infer(
            &rules(&[(".*", "shard_dim('data', 1, ignore_ndim_error=True)")]),
            &leaf,
            &mesh8()
        )
        .is_ok());
    }
}
