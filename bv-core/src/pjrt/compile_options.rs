//! `xla.CompileOptionsProto`, encoded by hand: the handful of fields bv sets.
//!
//! Field numbers follow `xla/pjrt/proto/compile_options.proto` and `xla/xla_data.proto` in
//! the openxla/xla repository. Encoding them ourselves avoids protoc and a vendored copy of
//! XLA's protos.

use std::collections::BTreeMap;

/// How an executable is partitioned and which devices run it.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileOptions {
    /// Data-parallel replicas (bv, like JAX, always uses 1 and partitions instead).
    pub num_replicas: i64,
    /// SPMD partitions: the number of devices one program is split over.
    pub num_partitions: i64,
    /// Let XLA partition a program annotated with shardings.
    pub use_spmd_partitioning: bool,
    /// Partition with Shardy (`sdy` attributes) rather than GSPMD (`mhlo.sharding`).
    pub use_shardy_partitioner: bool,
    /// Device ids, replica-major (`[replica][partition]` flattened); `None` lets the
    /// plugin choose.
    pub device_assignment: Option<Vec<i64>>,
    /// Per-compile XLA flags (`xla_dump_to`, `xla_gpu_...`), as `XLA_FLAGS` would set them.
    pub env_option_overrides: BTreeMap<String, OptionOverride>,
}

/// The value of one XLA flag override.
#[derive(Clone, Debug, PartialEq)]
pub enum OptionOverride {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            num_replicas: 1,
            num_partitions: 1,
            use_spmd_partitioning: true,
            use_shardy_partitioner: true,
            device_assignment: None,
            env_option_overrides: BTreeMap::new(),
        }
    }
}

impl CompileOptions {
    /// Options for one program partitioned over `n` devices with Shardy.
    pub fn partitioned(n: usize) -> Self {
        CompileOptions {
            num_partitions: n as i64,
            ..Self::default()
        }
    }

    /// Partitions with GSPMD (`mhlo.sharding` annotations) instead of Shardy.
    pub fn with_gspmd(mut self) -> Self {
        self.use_shardy_partitioner = false;
        self
    }

    /// Runs partition `i` on device id `ids[i]` (one replica).
    pub fn with_device_assignment(mut self, ids: Vec<i64>) -> Self {
        self.device_assignment = Some(ids);
        self
    }

    /// Sets one XLA flag for this compile.
    pub fn with_flag(mut self, name: &str, value: OptionOverride) -> Self {
        self.env_option_overrides.insert(name.to_string(), value);
        self
    }

    /// The serialized `CompileOptionsProto`.
    pub fn encode(&self) -> Vec<u8> {
        let mut build = Vec::new();
        put_int(&mut build, 1, -1); // device_ordinal: none, partitions pick devices
        put_int(&mut build, 4, self.num_replicas);
        put_int(&mut build, 5, self.num_partitions);
        put_bool(&mut build, 6, self.use_spmd_partitioning);
        if let Some(ids) = &self.device_assignment {
            put_bytes(&mut build, 9, &self.device_assignment_proto(ids));
        }
        put_bool(&mut build, 19, self.use_shardy_partitioner);

        let mut out = Vec::new();
        put_bytes(&mut out, 3, &build);
        for (name, value) in &self.env_option_overrides {
            let mut v = Vec::new();
            match value {
                OptionOverride::Str(s) => put_bytes(&mut v, 1, s.as_bytes()),
                OptionOverride::Bool(b) => put_bool(&mut v, 2, *b),
                OptionOverride::Int(i) => put_int(&mut v, 3, *i),
                OptionOverride::Double(d) => {
                    put_key(&mut v, 4, 1);
                    v.extend_from_slice(&d.to_le_bytes());
                }
            }
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, name.as_bytes());
            put_bytes(&mut entry, 2, &v);
            put_bytes(&mut out, 7, &entry);
        }
        out
    }

    fn device_assignment_proto(&self, ids: &[i64]) -> Vec<u8> {
        let replicas = self.num_replicas.max(1) as usize;
        let partitions = self.num_partitions.max(1) as usize;
        let mut da = Vec::new();
        put_int(&mut da, 1, replicas as i64);
        put_int(&mut da, 2, partitions as i64);
        for c in 0..partitions {
            let mut packed = Vec::new();
            for r in 0..replicas {
                put_varint(
                    &mut packed,
                    ids.get(r * partitions + c).copied().unwrap_or(0) as u64,
                );
            }
            let mut comp = Vec::new();
            put_bytes(&mut comp, 1, &packed);
            put_bytes(&mut da, 3, &comp);
        }
        da
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_int(out: &mut Vec<u8>, field: u32, v: i64) {
    put_key(out, field, 0);
    put_varint(out, v as u64);
}

fn put_bool(out: &mut Vec<u8>, field: u32, v: bool) {
    put_key(out, field, 0);
    out.push(u8::from(v));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected bytes are worked out by hand from the protobuf wire format: key = field << 3 |
    // wire type; varints little-endian base 128; -1 as a 10-byte two's-complement varint.
    #[test]
    fn default_options_encode_per_wire_format() {
        let minus_one = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let mut build = vec![0x08];
        build.extend_from_slice(&minus_one);
        build.extend_from_slice(&[0x20, 0x01, 0x28, 0x01, 0x30, 0x01, 0x98, 0x01, 0x01]);
        let mut want = vec![0x1a, build.len() as u8];
        want.extend_from_slice(&build);
        assert_eq!(CompileOptions::default().encode(), want);
    }

    #[test]
    fn device_assignment_is_one_computation_per_partition() {
        let o = CompileOptions::partitioned(2).with_device_assignment(vec![5, 300]);
        let bytes = o.encode();
        // DeviceAssignmentProto{replica_count=1, computation_count=2,
        //   computation_devices=[{replica_device_ids=[5]}, {replica_device_ids=[300]}]}
        let da = [
            0x08, 0x01, 0x10, 0x02, 0x1a, 0x03, 0x0a, 0x01, 0x05, 0x1a, 0x04, 0x0a, 0x02, 0xac,
            0x02,
        ];
        let mut field9 = vec![0x4a, da.len() as u8];
        field9.extend_from_slice(&da);
        assert!(bytes.windows(field9.len()).any(|w| w == field9.as_slice()));
    }

    #[test]
    fn flag_override_is_a_map_entry() {
        let o = CompileOptions::default().with_flag("xla_a", OptionOverride::Bool(true));
        let bytes = o.encode();
        // map entry: {1: "xla_a", 2: OptionOverrideProto{bool_field(2) = true}}
        let entry = [
            0x3a, 0x0b, 0x0a, 0x05, b'x', b'l', b'a', b'_', b'a', 0x12, 0x02, 0x10, 0x01,
        ];
        assert!(bytes.ends_with(&entry));
    }
}
