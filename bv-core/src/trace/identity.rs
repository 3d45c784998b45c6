//! Fresh identities for values: a call-like primitive that passes its operands through.

use std::rc::Rc;

use super::{bind_rc, Aval, BatchResult, EmitCx, Func, Graph, OpError, Primitive, Tensor};
use super::{ValueDef, VjpResult};

/// Passes its operands through unchanged; emits nothing. Gives the inputs of a function
/// being differentiated fresh identities, so tensors the function closes over stay
/// constants even when they are the same values.
#[derive(Debug)]
pub(crate) struct Identity {
    func: Func,
}

impl Identity {
    /// The identity on values of `avals`.
    pub(crate) fn new(avals: &[Aval]) -> Identity {
        let mut graph = Graph {
            params: avals.to_vec(),
            ..Graph::default()
        };
        for (i, a) in avals.iter().enumerate() {
            graph.values.push(ValueDef::Param(i));
            graph.avals.push(Rc::new(a.clone()));
        }
        Identity {
            func: Func {
                graph,
                outputs: (0..avals.len()).collect(),
            },
        }
    }
}

impl Primitive for Identity {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        Ok((fresh(ins), dims.to_vec()))
    }

    fn name(&self) -> &'static str {
        "identity"
    }
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        Ok(ins.iter().map(|a| (*a).clone()).collect())
    }
    fn emit(&self, _: &EmitCx) -> String {
        String::new()
    }
    fn num_outputs(&self) -> usize {
        self.func.outputs.len()
    }
    fn vjp(&self, _: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        Ok(cts.to_vec())
    }
    fn jvp(&self, _: &[Tensor], _: &[Tensor], t: &[Option<Tensor>]) -> Option<VjpResult> {
        Some(Ok(t.to_vec()))
    }
    fn inline(&self) -> Option<&Func> {
        Some(&self.func)
    }
}

/// New handles for `xs`, distinct from every existing value.
#[track_caller]
pub(crate) fn fresh(xs: &[Tensor]) -> Vec<Tensor> {
    if xs.is_empty() {
        return Vec::new();
    }
    let avals: Vec<Aval> = xs.iter().map(|x| x.aval().clone()).collect();
    let refs: Vec<&Tensor> = xs.iter().collect();
    bind_rc(Rc::new(Identity::new(&avals)), &refs)
}
