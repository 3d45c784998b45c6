//! JAX's type-promotion lattice (`jax.numpy` "standard" promotion) with weak types.
//!
//! ```text
//! b1 → i* → u8 → u16 → u32 → u64 → f*      i* → i8 → i16 → i32 → i64 → f*
//!            u8 → i16,  u16 → i32,  u32 → i64
//! f* → bf16 → f32 → f64                     f* → f16 → f32
//! ```
//! `i*` and `f*` are the weak integer and float types of Rust scalars. The result of two
//! types is their least upper bound; a weak result takes the default type (i32 or f32) and
//! stays weak, as in JAX with x64 disabled.

use crate::dtype::DType;

/// A node of the lattice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    B,
    IW,
    FW,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    BF16,
    F16,
    F32,
    F64,
}

const ALL: [Node; 15] = [
    Node::B,
    Node::IW,
    Node::FW,
    Node::U8,
    Node::U16,
    Node::U32,
    Node::U64,
    Node::I8,
    Node::I16,
    Node::I32,
    Node::I64,
    Node::BF16,
    Node::F16,
    Node::F32,
    Node::F64,
];

fn parents(n: Node) -> &'static [Node] {
    use Node::*;
    match n {
        B => &[IW],
        IW => &[U8, I8],
        U8 => &[I16, U16],
        U16 => &[I32, U32],
        U32 => &[I64, U64],
        U64 | I64 => &[FW],
        I8 => &[I16],
        I16 => &[I32],
        I32 => &[I64],
        FW => &[BF16, F16],
        BF16 | F16 => &[F32],
        F32 => &[F64],
        F64 => &[],
    }
}

fn index(n: Node) -> usize {
    ALL.iter().position(|&m| m == n).unwrap_or(0)
}

/// The set of nodes at or above `n`, as a bit mask.
fn upper(n: Node) -> u32 {
    let mut mask = 1u32 << index(n);
    for &p in parents(n) {
        mask |= upper(p);
    }
    mask
}

fn node(dtype: DType, weak: bool) -> Node {
    match dtype {
        DType::Bool => Node::B,
        d if weak && (d.is_signed_int() || d.is_unsigned_int()) => Node::IW,
        d if weak && d.is_float() => Node::FW,
        DType::U8 => Node::U8,
        DType::U16 => Node::U16,
        DType::U32 => Node::U32,
        DType::U64 => Node::U64,
        DType::I8 => Node::I8,
        DType::I16 => Node::I16,
        DType::I32 => Node::I32,
        DType::I64 => Node::I64,
        DType::BF16 => Node::BF16,
        DType::F16 => Node::F16,
        DType::F32 => Node::F32,
        DType::F64 => Node::F64,
    }
}

fn resolve(n: Node) -> (DType, bool) {
    match n {
        Node::B => (DType::Bool, false),
        Node::IW => (DType::I32, true),
        Node::FW => (DType::F32, true),
        Node::U8 => (DType::U8, false),
        Node::U16 => (DType::U16, false),
        Node::U32 => (DType::U32, false),
        Node::U64 => (DType::U64, false),
        Node::I8 => (DType::I8, false),
        Node::I16 => (DType::I16, false),
        Node::I32 => (DType::I32, false),
        Node::I64 => (DType::I64, false),
        Node::BF16 => (DType::BF16, false),
        Node::F16 => (DType::F16, false),
        Node::F32 => (DType::F32, false),
        Node::F64 => (DType::F64, false),
    }
}

/// The promoted `(dtype, weak)` of two `(dtype, weak)` operands.
pub fn promote(a: (DType, bool), b: (DType, bool)) -> (DType, bool) {
    let (na, nb) = (node(a.0, a.1), node(b.0, b.1));
    // A weak operand of the same type as the other keeps that exact type (f32~ + f32 = f32).
    let common = upper(na) & upper(nb);
    // The least upper bound is the common node whose own upper set is the whole common set.
    let lub = ALL
        .iter()
        .copied()
        .find(|&n| common & (1 << index(n)) != 0 && upper(n) == common);
    let (d, w) = resolve(lub.unwrap_or(Node::F64));
    // Weak inputs of a concrete width (e.g. a weak bf16 tensor) keep that width when they
    // meet only other weak values.
    if w && a.1 && b.1 && a.0 == b.0 {
        return (a.0, true);
    }
    // Two strong types meeting at a weak node (u64 + i64) give a strong default type.
    (d, w && (a.1 || b.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DType::*;

    fn p(a: DType, b: DType) -> DType {
        promote((a, false), (b, false)).0
    }

    #[test]
    fn jax_table() {
        // Rows from jax.numpy's promotion table (jax.numpy.promote_types).
        assert_eq!(p(U8, I8), I16);
        assert_eq!(p(U16, I8), I32);
        assert_eq!(p(U32, I32), I64);
        assert_eq!(promote((U64, false), (I64, false)), (F32, false));
        assert_eq!(p(BF16, F16), F32);
        assert_eq!(p(Bool, U8), U8);
        assert_eq!(p(I64, BF16), BF16);
        assert_eq!(p(F16, F64), F64);
        assert_eq!(p(I8, U8), I16);
        for d in DType::ALL {
            assert_eq!(p(d, d), d);
        }
    }

    #[test]
    fn weak_scalars_defer() {
        assert_eq!(promote((BF16, false), (F32, true)), (BF16, false));
        assert_eq!(promote((I8, false), (I32, true)), (I8, false));
        assert_eq!(promote((I32, false), (F32, true)), (F32, true));
        assert_eq!(promote((U8, false), (F32, true)), (F32, true));
        assert_eq!(promote((Bool, false), (I32, true)), (I32, true));
        assert_eq!(promote((F32, true), (I32, true)), (F32, true));
        assert_eq!(promote((BF16, true), (BF16, true)), (BF16, true));
    }
}
