//! What a primitive's lowering rule ([`super::Primitive::emit`]) is given: its operands,
//! result avals, a naming scope and the writer for region bodies. The core defines the
//! types the trait names; the StableHLO emitter (`emit`) implements their methods and the
//! module text.

use std::cell::Cell;

use super::Aval;

/// An operand as a primitive's emitter sees it: its SSA name and abstract value.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    /// SSA name, e.g. `%3`, `%arg0` or `%5#1`.
    pub name: &'a str,
    /// Its abstract value.
    pub aval: &'a Aval,
}

/// What a primitive's emitter gets: operands, result avals and a prefix for naming values
/// inside its regions (unique per op).
#[derive(Clone, Copy)]
pub struct EmitCx<'a> {
    /// Operands in order.
    pub ins: &'a [Operand<'a>],
    /// Result avals in order.
    pub outs: &'a [Aval],
    /// A letter-led prefix (`r7`) for SSA names inside regions.
    pub scope: &'a str,
    /// Emits the bodies of region-holding ops.
    pub writer: &'a Writer,
}

/// Emits the nodes of graphs into text with one SSA counter for the whole module, so names
/// stay unique across nested regions. Call-like primitives ([`Primitive::inline`]) are
/// expanded in place; region-holding ones get a writer in [`EmitCx::writer`] for their
/// bodies.
///
/// [`Primitive::inline`]: super::Primitive::inline
#[derive(Debug, Default)]
pub struct Writer {
    /// The next SSA number.
    pub(crate) counter: Cell<usize>,
    /// The last channel id handed out.
    pub(crate) channels: Cell<i64>,
}
