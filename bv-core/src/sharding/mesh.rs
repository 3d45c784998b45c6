//! A logical mesh: named axes over a flat, canonical device order.

use super::ShardingError;

/// Named axes (major to minor) over device ids in one canonical order, used alike for
/// parameters, data, evaluators and the compile device assignment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mesh {
    axes: Vec<(String, usize)>,
    device_ids: Vec<i64>,
}

impl Mesh {
    /// Builds a mesh from big_vision's `config.mesh`: `(axis, size)` pairs where one size
    /// may be -1 (all remaining devices), over `device_ids` in canonical order.
    pub fn new(axes: &[(&str, i64)], device_ids: &[i64]) -> Result<Mesh, ShardingError> {
        let describe = || {
            let parts: Vec<String> = axes.iter().map(|(a, s)| format!("({a:?}, {s})")).collect();
            format!("[{}]", parts.join(", "))
        };
        let err = |reason: String| ShardingError::Mesh {
            axes: describe(),
            reason,
        };
        let n = device_ids.len();
        let known: i64 = axes
            .iter()
            .filter(|(_, s)| *s != -1)
            .map(|(_, s)| *s)
            .product();
        let wildcards = axes.iter().filter(|(_, s)| *s == -1).count();
        if wildcards > 1 {
            return Err(err("at most one axis may have size -1".into()));
        }
        if let Some((a, s)) = axes.iter().find(|(_, s)| *s == 0 || *s < -1) {
            return Err(err(format!("axis {a:?} has size {s}")));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some((a, _)) = axes.iter().find(|(a, _)| !seen.insert(*a)) {
            return Err(err(format!("axis {a:?} appears twice")));
        }
        let resolved: Vec<(String, usize)> = axes
            .iter()
            .map(|(a, s)| {
                let size = if *s == -1 {
                    n as i64 / known.max(1)
                } else {
                    *s
                };
                (a.to_string(), size as usize)
            })
            .collect();
        let total: usize = resolved.iter().map(|(_, s)| s).product();
        if total != n || (wildcards == 1 && n as i64 % known.max(1) != 0) {
            return Err(err(format!(
                "the axis sizes multiply to {total}, but there are {n} devices"
            )));
        }
        Ok(Mesh {
            axes: resolved,
            device_ids: device_ids.to_vec(),
        })
    }

    /// The axes, major to minor, with their sizes.
    pub fn axes(&self) -> &[(String, usize)] {
        &self.axes
    }

    /// The size of `axis`, if the mesh has it.
    pub fn axis_size(&self, axis: &str) -> Option<usize> {
        self.axes.iter().find(|(a, _)| a == axis).map(|(_, s)| *s)
    }

    /// The position of `axis` among the mesh axes.
    pub fn axis_index(&self, axis: &str) -> Option<usize> {
        self.axes.iter().position(|(a, _)| a == axis)
    }

    /// The device ids in canonical (row-major mesh) order.
    pub fn device_ids(&self) -> &[i64] {
        &self.device_ids
    }

    /// The number of devices.
    pub fn size(&self) -> usize {
        self.device_ids.len()
    }

    /// The mesh coordinates of the device at flat position `p`.
    pub fn coords(&self, p: usize) -> Vec<usize> {
        let mut rest = p;
        let mut out = vec![0; self.axes.len()];
        for (i, (_, s)) in self.axes.iter().enumerate().rev() {
            out[i] = rest % s;
            rest /= s;
        }
        out
    }

    /// The Shardy mesh declaration: `sdy.mesh @NAME = <["data"=8]>`, with `device_ids`
    /// when the order is not `0..n`.
    pub fn to_sdy(&self, name: &str) -> String {
        let axes: Vec<String> = self
            .axes
            .iter()
            .map(|(a, s)| format!("\"{a}\"={s}"))
            .collect();
        let iota = self
            .device_ids
            .iter()
            .enumerate()
            .all(|(i, d)| *d == i as i64);
        if iota {
            format!("sdy.mesh @{name} = <[{}]>", axes.join(", "))
        } else {
            let ids: Vec<String> = self.device_ids.iter().map(|d| d.to_string()).collect();
            format!(
                "sdy.mesh @{name} = <[{}], device_ids=[{}]>",
                axes.join(", "),
                ids.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_one_takes_the_remaining_devices() {
        let ids: Vec<i64> = (0..8).collect();
        let m = Mesh::new(&[("data", -1), ("model", 2)], &ids).unwrap();
        assert_eq!(
            m.axes(),
            &[("data".to_string(), 4), ("model".to_string(), 2)]
        );
        assert_eq!(m.coords(5), vec![2, 1]);
        assert_eq!(
            m.to_sdy("mesh"),
            r#"sdy.mesh @mesh = <["data"=4, "model"=2]>"#
        );
    }

    #[test]
    fn bad_meshes_are_explained() {
        let ids: Vec<i64> = (0..8).collect();
        let e = Mesh::new(&[("data", 3)], &ids).unwrap_err().to_string();
        assert_eq!(
            e,
            r#"mesh [("data", 3)]: the axis sizes multiply to 3, but there are 8 devices"#
        );
        let e = Mesh::new(&[("a", -1), ("b", 3)], &ids)
            .unwrap_err()
            .to_string();
        assert!(e.contains("multiply to"), "{e}");
        let e = Mesh::new(&[("a", -1), ("a", 1)], &ids)
            .unwrap_err()
            .to_string();
        assert!(e.contains("appears twice"), "{e}");
    }

    #[test]
    fn non_iota_order_is_written_out() {
        let m = Mesh::new(&[("x", 2)], &[1, 0]).unwrap();
        assert_eq!(
            m.to_sdy("m"),
            r#"sdy.mesh @m = <["x"=2], device_ids=[1, 0]>"#
        );
    }
}
