//! `PartitionSpec` and `NamedSharding`: which mesh axes split which array dimensions.

use std::fmt;
use std::ops::Range;

use super::{Mesh, ShardingError};

/// For each array dimension, the mesh axes (major to minor) that split it; an empty list
/// (or a dimension past the end) means the dimension is not split. JAX's `P(...)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PartitionSpec(pub Vec<Vec<String>>);

impl PartitionSpec {
    /// Every dimension replicated: `P()`.
    pub fn replicated() -> Self {
        PartitionSpec(Vec::new())
    }

    /// One optional axis per dimension: `P("data", None)` is
    /// `PartitionSpec::of(&[Some("data"), None])`.
    pub fn of(dims: &[Option<&str>]) -> Self {
        PartitionSpec(
            dims.iter()
                .map(|d| d.iter().map(|a| a.to_string()).collect())
                .collect(),
        )
    }

    /// The axes splitting dimension `i`.
    pub fn dim(&self, i: usize) -> &[String] {
        self.0.get(i).map_or(&[], |v| v.as_slice())
    }

    /// True when no dimension is split.
    pub fn is_replicated(&self) -> bool {
        self.0.iter().all(|d| d.is_empty())
    }

    /// All mesh axes the spec uses.
    pub fn axes(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flatten().map(String::as_str)
    }
}

impl fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self
            .0
            .iter()
            .map(|d| match d.as_slice() {
                [] => "None".to_string(),
                [a] => format!("'{a}'"),
                many => format!(
                    "({})",
                    many.iter()
                        .map(|a| format!("'{a}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
            .collect();
        write!(f, "P({})", dims.join(", "))
    }
}

/// A partition spec over a mesh: how a global array is laid out over devices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamedSharding {
    pub mesh: Mesh,
    pub spec: PartitionSpec,
}

impl NamedSharding {
    /// Pairs `spec` with `mesh`, checking that every axis exists and is used once.
    pub fn new(mesh: Mesh, spec: PartitionSpec) -> Result<Self, ShardingError> {
        let mut seen = std::collections::BTreeSet::new();
        for a in spec.axes() {
            if mesh.axis_size(a).is_none() {
                return Err(ShardingError::Spec {
                    spec: spec.to_string(),
                    reason: format!(
                        "the mesh has no axis {a:?} (axes: {})",
                        mesh.axes()
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            if !seen.insert(a) {
                return Err(ShardingError::Spec {
                    spec: spec.to_string(),
                    reason: format!("axis {a:?} splits more than one dimension"),
                });
            }
        }
        Ok(NamedSharding { mesh, spec })
    }

    /// Full replication over `mesh`.
    pub fn replicated(mesh: Mesh) -> Self {
        NamedSharding {
            mesh,
            spec: PartitionSpec::replicated(),
        }
    }

    /// How many pieces dimension `i` is cut into.
    pub fn parts(&self, i: usize) -> usize {
        self.spec
            .dim(i)
            .iter()
            .filter_map(|a| self.mesh.axis_size(a))
            .product()
    }

    /// The shape of each device's shard of a `global` array.
    pub fn shard_shape(&self, global: &[i64]) -> Result<Vec<i64>, ShardingError> {
        if self.spec.0.len() > global.len() {
            return Err(ShardingError::Spec {
                spec: self.spec.to_string(),
                reason: format!(
                    "it has {} entries for an array of rank {}",
                    self.spec.0.len(),
                    global.len()
                ),
            });
        }
        global
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let parts = self.parts(i);
                if size % parts as i64 != 0 {
                    return Err(ShardingError::Indivisible {
                        shape: global.to_vec(),
                        spec: self.spec.to_string(),
                        dim: i,
                        size,
                        parts,
                    });
                }
                Ok(size / parts as i64)
            })
            .collect()
    }

    /// The shard index along dimension `i` of the device at mesh position `p`.
    fn shard_index(&self, p: usize, i: usize) -> usize {
        let coords = self.mesh.coords(p);
        self.spec.dim(i).iter().fold(0, |acc, a| {
            let k = self.mesh.axis_index(a).unwrap_or(0);
            acc * self.mesh.axes()[k].1 + coords[k]
        })
    }

    /// For each device in mesh order, the index ranges of the global array it holds.
    pub fn shard_slices(&self, global: &[i64]) -> Result<Vec<Vec<Range<i64>>>, ShardingError> {
        let shard = self.shard_shape(global)?;
        Ok((0..self.mesh.size())
            .map(|p| {
                shard
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| {
                        let start = self.shard_index(p, i) as i64 * s;
                        start..start + s
                    })
                    .collect()
            })
            .collect())
    }

    /// The Shardy attribute for an array of `rank` dimensions on the mesh declared as
    /// `@mesh_name`: `#sdy.sharding<@mesh, [{"data"}, {}]>`.
    pub fn to_sdy(&self, mesh_name: &str, rank: usize) -> String {
        let dims: Vec<String> = (0..rank)
            .map(|i| {
                let axes: Vec<String> = self
                    .spec
                    .dim(i)
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect();
                format!("{{{}}}", axes.join(", "))
            })
            .collect();
        format!("#sdy.sharding<@{mesh_name}, [{}]>", dims.join(", "))
    }

    /// The GSPMD (`mhlo.sharding`) string for an array of `rank` dimensions, with explicit
    /// device ids: `{devices=[8,1]0,1,2,3,4,5,6,7}`, `{replicated}`, or with
    /// `last_tile_dim_replicate` when some mesh axes are unused.
    pub fn to_gspmd(&self, rank: usize) -> String {
        if self.spec.is_replicated() {
            return "{replicated}".into();
        }
        let used: Vec<&str> = self.spec.axes().collect();
        let unused: Vec<usize> = (0..self.mesh.axes().len())
            .filter(|k| !used.contains(&self.mesh.axes()[*k].0.as_str()))
            .collect();
        let replicas: usize = unused.iter().map(|k| self.mesh.axes()[*k].1).product();
        let mut tile: Vec<usize> = (0..rank).map(|i| self.parts(i)).collect();
        if replicas > 1 {
            tile.push(replicas);
        }
        let mut ids = vec![0i64; self.mesh.size()];
        for (p, id) in self.mesh.device_ids().iter().enumerate() {
            let coords = self.mesh.coords(p);
            let mut pos: Vec<usize> = (0..rank).map(|i| self.shard_index(p, i)).collect();
            if replicas > 1 {
                pos.push(
                    unused
                        .iter()
                        .fold(0, |acc, k| acc * self.mesh.axes()[*k].1 + coords[*k]),
                );
            }
            let flat = pos.iter().zip(&tile).fold(0, |acc, (c, t)| acc * t + c);
            ids[flat] = *id;
        }
        let tile_s: Vec<String> = tile.iter().map(|t| t.to_string()).collect();
        let ids_s: Vec<String> = ids.iter().map(|d| d.to_string()).collect();
        let suffix = if replicas > 1 {
            " last_tile_dim_replicate"
        } else {
            ""
        };
        format!(
            "{{devices=[{}]{}{suffix}}}",
            tile_s.join(","),
            ids_s.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh_4x2() -> Mesh {
        Mesh::new(&[("data", 4), ("model", 2)], &(0..8).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn shard_shapes_and_slices() {
        let s = NamedSharding::new(mesh_4x2(), PartitionSpec::of(&[Some("data"), None])).unwrap();
        assert_eq!(s.shard_shape(&[16, 3]).unwrap(), vec![4, 3]);
        let slices = s.shard_slices(&[16, 3]).unwrap();
        // Devices 2 and 3 sit at data coordinate 1: rows 4..8, replicated over "model".
        assert_eq!(slices[2], vec![4..8, 0..3]);
        assert_eq!(slices[3], vec![4..8, 0..3]);
        let e = s.shard_shape(&[10, 3]).unwrap_err().to_string();
        assert_eq!(e, "cannot shard [10, 3] with P('data', None): dimension 0 of size 10 is not divisible by 4");
    }

    #[test]
    fn multi_axis_dimension_is_major_to_minor() {
        let s = NamedSharding::new(
            mesh_4x2(),
            PartitionSpec(vec![vec!["model".into(), "data".into()]]),
        )
        .unwrap();
        let slices = s.shard_slices(&[8]).unwrap();
        // Device 1 has coords (data 0, model 1): index 1*4 + 0 = 4.
        assert_eq!(slices[1], vec![4..5]);
        assert_eq!(
            s.to_sdy("mesh", 1),
            r#"#sdy.sharding<@mesh, [{"model", "data"}]>"#
        );
    }

    #[test]
    fn gspmd_strings() {
        let m = mesh_4x2();
        let rows = NamedSharding::new(m.clone(), PartitionSpec::of(&[Some("data"), None])).unwrap();
        assert_eq!(
            rows.to_gspmd(2),
            "{devices=[4,1,2]0,1,2,3,4,5,6,7 last_tile_dim_replicate}"
        );
        let cols =
            NamedSharding::new(m.clone(), PartitionSpec::of(&[None, Some("model")])).unwrap();
        assert_eq!(
            cols.to_gspmd(2),
            "{devices=[1,2,4]0,2,4,6,1,3,5,7 last_tile_dim_replicate}"
        );
        let both = NamedSharding::new(m.clone(), PartitionSpec::of(&[Some("model"), Some("data")]))
            .unwrap();
        assert_eq!(both.to_gspmd(2), "{devices=[2,4]0,2,4,6,1,3,5,7}");
        assert_eq!(NamedSharding::replicated(m).to_gspmd(2), "{replicated}");
    }

    #[test]
    fn bad_specs_are_explained() {
        let e = NamedSharding::new(mesh_4x2(), PartitionSpec::of(&[Some("batch")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"partition spec P('batch'): the mesh has no axis "batch" (axes: data, model)"#
        );
        let e = NamedSharding::new(mesh_4x2(), PartitionSpec::of(&[Some("data"), Some("data")]))
            .unwrap_err();
        assert!(e.to_string().contains("splits more than one dimension"));
    }
}
