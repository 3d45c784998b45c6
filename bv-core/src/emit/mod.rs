//! StableHLO text emission: a traced [`Graph`] becomes a `func.func public @main` module in
//! StableHLO's readable (pretty) syntax; ops with regions use the generic form with `{...}`
//! attribute dictionaries, as the StableHLO spec's own examples do.

pub(crate) mod literal;

use std::fmt::Write as _;

use crate::trace::{Aval, Func, Graph, ValueDef};
pub(crate) use crate::trace::{EmitCx, Operand, Writer};

impl EmitCx<'_> {
    /// Operand `i`'s SSA name.
    pub fn name(&self, i: usize) -> &str {
        self.ins[i].name
    }

    /// Operand `i`'s tensor type.
    pub fn ty(&self, i: usize) -> String {
        ty(self.ins[i].aval)
    }

    /// The first result's tensor type.
    pub fn out_ty(&self) -> String {
        ty(&self.outs[0])
    }

    /// All operand names joined by `, `.
    pub fn names(&self) -> String {
        let v: Vec<&str> = self.ins.iter().map(|o| o.name).collect();
        v.join(", ")
    }

    /// `(operand types) -> result type(s)`.
    pub fn fn_type(&self) -> String {
        let ins: Vec<String> = self.ins.iter().map(|o| ty(o.aval)).collect();
        let outs: Vec<String> = self.outs.iter().map(ty).collect();
        if outs.len() == 1 {
            format!("({}) -> {}", ins.join(", "), outs[0])
        } else {
            format!("({}) -> ({})", ins.join(", "), outs.join(", "))
        }
    }
}

/// The StableHLO tensor type of an aval: `tensor<2x3xf32>`, `tensor<i1>`.
pub fn ty(a: &Aval) -> String {
    let mut s = String::from("tensor<");
    for d in &a.shape {
        let _ = write!(s, "{d}x");
    }
    s.push_str(a.dtype.mlir_name());
    s.push('>');
    s
}

/// The rank-0 tensor type of an aval's element type: `tensor<f32>`.
pub fn scalar_ty(a: &Aval) -> String {
    format!("tensor<{}>", a.dtype.mlir_name())
}

/// A bracketed integer list: `[0, 1]`.
pub fn list<T: ToString>(v: &[T]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// A dense i64 array attribute: `array<i64: 0, 1>` (`array<i64>` when empty).
pub fn i64_array<T: ToString>(v: &[T]) -> String {
    if v.is_empty() {
        return "array<i64>".into();
    }
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("array<i64: {}>", parts.join(", "))
}

/// A region with one block, in generic form:
/// `({\n^bb0(args):\n  body\n  stablehlo.return ...\n})`.
pub fn region(args: &[(String, String)], body: &[String], ret: &[(String, String)]) -> String {
    let args: Vec<String> = args.iter().map(|(n, t)| format!("{n}: {t}")).collect();
    let mut s = format!("({{\n  ^bb0({}):\n", args.join(", "));
    for line in body {
        let _ = writeln!(s, "    {line}");
    }
    let names: Vec<&str> = ret.iter().map(|(n, _)| n.as_str()).collect();
    let tys: Vec<&str> = ret.iter().map(|(_, t)| t.as_str()).collect();
    let _ = write!(
        s,
        "    stablehlo.return {} : {}\n}})",
        names.join(", "),
        tys.join(", ")
    );
    s
}

/// Per-argument and per-result attributes and module-level settings for [`module`].
#[derive(Clone, Debug, Default)]
pub struct ModuleOptions {
    /// The module's symbol name (`@jit_name`).
    pub name: String,
    /// For each flat argument, the output index it is donated to (`tf.aliasing_output`).
    pub aliases: Vec<Option<usize>>,
    /// For each flat result, its path in the result tree (`jax.result_info`).
    pub result_names: Vec<String>,
    /// Devices the program is partitioned over (0 or 1: unpartitioned).
    pub num_partitions: usize,
    /// Module-level declarations before `@main`, e.g. Shardy's `sdy.mesh @mesh = <...>`.
    pub preamble: Vec<String>,
    /// For each flat argument, a sharding attribute (`sdy.sharding = #sdy.sharding<...>`).
    pub arg_shardings: Vec<Option<String>>,
    /// For each flat result, a sharding attribute.
    pub result_shardings: Vec<Option<String>>,
}

/// Why a graph cannot be emitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// An output depends on a rejected op; the trace's own error says which.
    #[error("output {0} depends on a rejected op")]
    Poisoned(usize),
}

impl Writer {
    /// A fresh channel id (1, 2, …), unique in the module, for a cross-device collective.
    pub fn channel(&self) -> i64 {
        let c = self.channels.get() + 1;
        self.channels.set(c);
        c
    }

    /// Emits the live nodes of `f` with its parameters named `params`; returns the op lines
    /// and the names of its results.
    pub fn body(
        &self,
        f: &Func,
        params: &[String],
    ) -> Result<(Vec<String>, Vec<String>), EmitError> {
        self.graph(&f.graph, &f.outputs, params)
    }

    fn graph(
        &self,
        graph: &Graph,
        outputs: &[usize],
        params: &[String],
    ) -> Result<(Vec<String>, Vec<String>), EmitError> {
        let live = live_nodes(graph, outputs);
        let mut names: Vec<String> = vec![String::new(); graph.values.len()];
        for (vid, def) in graph.values.iter().enumerate() {
            if let ValueDef::Param(i) = def {
                names[vid] = params.get(*i).cloned().unwrap_or_default();
            }
        }
        let mut lines = Vec::new();
        for (ni, node) in graph.nodes.iter().enumerate() {
            if !live[ni] {
                continue;
            }
            let in_names: Vec<String> = node.inputs.iter().map(|&v| names[v].clone()).collect();
            if let Some(f) = node.prim.inline() {
                let (body, outs) = self.body(f, &in_names)?;
                lines.extend(body);
                for (&o, n) in node.outputs.iter().zip(outs) {
                    names[o] = n;
                }
                continue;
            }
            let n = self.counter.get();
            self.counter.set(n + 1);
            let lhs = if node.outputs.len() == 1 {
                names[node.outputs[0]] = format!("%{n}");
                format!("%{n}")
            } else {
                for (k, &o) in node.outputs.iter().enumerate() {
                    names[o] = format!("%{n}#{k}");
                }
                format!("%{n}:{}", node.outputs.len())
            };
            let ins: Vec<Operand> = node
                .inputs
                .iter()
                .zip(&in_names)
                .map(|(&v, name)| Operand {
                    name,
                    aval: &graph.avals[v],
                })
                .collect();
            let outs: Vec<Aval> = node
                .outputs
                .iter()
                .map(|&o| (*graph.avals[o]).clone())
                .collect();
            let scope = format!("r{n}");
            let rhs = node.prim.emit(&EmitCx {
                ins: &ins,
                outs: &outs,
                scope: &scope,
                writer: self,
            });
            lines.push(format!("{lhs} = {rhs}"));
        }
        let mut ret_names = Vec::with_capacity(outputs.len());
        for (i, &o) in outputs.iter().enumerate() {
            if matches!(graph.values[o], ValueDef::Poison | ValueDef::Capture) {
                return Err(EmitError::Poisoned(i));
            }
            ret_names.push(names[o].clone());
        }
        Ok((lines, ret_names))
    }
}

/// Emits the whole module: `func.func public @main` computing `outputs` (value ids) of
/// `graph`. Only ops that an output depends on are emitted.
pub fn module(graph: &Graph, outputs: &[usize], opts: &ModuleOptions) -> Result<String, EmitError> {
    let params: Vec<String> = (0..graph.params.len())
        .map(|i| format!("%arg{i}"))
        .collect();
    let (lines, ret_names) = Writer::default().graph(graph, outputs, &params)?;
    let mut body = String::new();
    for line in lines {
        let _ = writeln!(body, "    {}", line.replace('\n', "\n    "));
    }
    let args: Vec<String> = graph
        .params
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut attrs = Vec::new();
            if let Some(k) = opts.aliases.get(i).copied().flatten() {
                attrs.push(format!("tf.aliasing_output = {k} : i32"));
            }
            if let Some(Some(sh)) = opts.arg_shardings.get(i) {
                attrs.push(sh.clone());
            }
            with_attrs(format!("%arg{i}: {}", ty(a)), &attrs)
        })
        .collect();
    let results: Vec<String> = outputs
        .iter()
        .enumerate()
        .map(|(i, &o)| {
            let mut attrs = Vec::new();
            if let Some(p) = opts.result_names.get(i) {
                attrs.push(format!("jax.result_info = \"{}\"", escape(p)));
            }
            if let Some(Some(sh)) = opts.result_shardings.get(i) {
                attrs.push(sh.clone());
            }
            with_attrs(ty(&graph.avals[o]), &attrs)
        })
        .collect();
    let ret_tys: Vec<String> = outputs.iter().map(|&o| ty(&graph.avals[o])).collect();
    let name = if opts.name.is_empty() {
        "jit_main"
    } else {
        &opts.name
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "module @{} attributes {{mhlo.num_partitions = {} : i32, mhlo.num_replicas = 1 : i32}} {{",
        symbol(name),
        opts.num_partitions.max(1)
    );
    for line in &opts.preamble {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(
        s,
        "  func.func public @main({}) -> ({}) {{",
        args.join(", "),
        results.join(", ")
    );
    s.push_str(&body);
    if outputs.is_empty() {
        s.push_str("    return\n");
    } else {
        let _ = writeln!(
            s,
            "    return {} : {}",
            ret_names.join(", "),
            ret_tys.join(", ")
        );
    }
    s.push_str("  }\n}\n");
    Ok(s)
}

/// Marks the nodes some output depends on.
fn live_nodes(graph: &Graph, outputs: &[usize]) -> Vec<bool> {
    let mut live_val = vec![false; graph.values.len()];
    for &o in outputs {
        live_val[o] = true;
    }
    let mut live = vec![false; graph.nodes.len()];
    for (ni, node) in graph.nodes.iter().enumerate().rev() {
        if node.outputs.iter().any(|&o| live_val[o]) {
            live[ni] = true;
            for &i in &node.inputs {
                live_val[i] = true;
            }
        }
    }
    live
}

/// Keeps `[A-Za-z0-9_.$-]` of a module name and replaces anything else with `_`.
fn symbol(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.$-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.chars().next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => s,
        _ => format!("_{s}"),
    }
}

/// `text {a, b}`, or `text` alone when there are no attributes.
fn with_attrs(text: String, attrs: &[String]) -> String {
    if attrs.is_empty() {
        text
    } else {
        format!("{text} {{{}}}", attrs.join(", "))
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
