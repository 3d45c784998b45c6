//! bv-core's top-level modules form a DAG (docs/architecture.md gives the layers): this test
//! reads `src/`, collects each module's `crate::<module>` and cross-module `super::` paths
//! outside `#[cfg(test)]` code, and fails on a cycle, printing it with the lines that make
//! each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One use of another top-level module: the file and line that makes the edge.
type Edges = BTreeMap<(String, String), Vec<String>>;

#[test]
fn top_level_modules_have_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_edges(&src);
    let nodes: BTreeSet<String> = edges
        .keys()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    assert!(
        nodes.len() > 10,
        "found too few modules to be reading bv-core: {nodes:?}"
    );
    if let Some(cycle) = find_cycle(&nodes, &edges) {
        let mut msg = format!("import cycle: {}\n", cycle.join(" -> "));
        for w in cycle.windows(2) {
            let uses = &edges[&(w[0].clone(), w[1].clone())];
            msg += &format!("  {} -> {}: {}\n", w[0], w[1], uses.join(", "));
        }
        panic!("{msg}");
    }
}

#[test]
fn the_parser_sees_paths_and_skips_tests() {
    let text = "use crate::{a::X, b};\nfn f() { super::c::g(); }\n#[cfg(test)]\nmod tests { use crate::d; }\n// crate::e\nconst S: &str = \"crate::f\";\nmacro_rules! m { () => { $crate::g } }\n";
    let found: Vec<String> = paths_in(text, &["m".into(), "inner".into()])
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(found, ["a", "b", "m"]);
    let root: Vec<String> = paths_in("use super::c;", &["m".into()])
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(root, ["c"]);
    let mut edges = Edges::new();
    for (a, b) in [("x", "y"), ("y", "z"), ("z", "x")] {
        edges.insert((a.into(), b.into()), vec![]);
    }
    let nodes = ["x", "y", "z"].map(String::from).into_iter().collect();
    assert_eq!(
        find_cycle(&nodes, &edges).map(|c| c.len()),
        Some(4),
        "x -> y -> z -> x"
    );
    edges.remove(&("z".into(), "x".into()));
    assert_eq!(find_cycle(&nodes, &edges), None);
}

/// Edges between top-level modules, each with the `file:line`s that use the target.
fn module_edges(src: &Path) -> Edges {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges = Edges::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let module = module_path(rel);
        let Some(top) = module.first() else { continue };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (target, line) in paths_in(&text, &module) {
            if &target != top && src_has_module(src, &target) {
                edges
                    .entry((top.clone(), target))
                    .or_default()
                    .push(format!("{}:{line}", rel.display()));
            }
        }
    }
    edges
}

fn src_has_module(src: &Path, name: &str) -> bool {
    src.join(format!("{name}.rs")).exists() || src.join(name).join("mod.rs").exists()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable src")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module a file defines: `a/mod.rs` and `a.rs` are `[a]`, `a/b.rs` is `[a, b]`,
/// `lib.rs` is the root `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The top-level modules that code in module `module` names through `crate::` or
/// `super::` paths, with the line of each, outside comments, strings and `#[cfg(test)]`
/// items (`$crate::` in a macro belongs to the macro's user, so it is skipped).
fn paths_in(text: &str, module: &[String]) -> Vec<(String, usize)> {
    let code = drop_cfg_test(&blank_comments_and_strings(text));
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let word_start = i == 0 || !is_ident(b[i - 1]) && b[i - 1] != b'$';
        if !word_start {
            i += 1;
            continue;
        }
        let depth_and_rest = if code[i..].starts_with("crate::") {
            Some((module.len(), i + "crate::".len()))
        } else if code[i..].starts_with("super::") {
            let mut j = i;
            let mut ups = 0;
            while code[j..].starts_with("super::") {
                ups += 1;
                j += "super::".len();
            }
            Some((ups, j))
        } else {
            None
        };
        let Some((ups, rest)) = depth_and_rest else {
            i += 1;
            continue;
        };
        let line = code[..i].matches('\n').count() + 1;
        let base = &module[..module.len().saturating_sub(ups)];
        let names = if let Some(first) = base.first() {
            vec![first.clone()]
        } else if b.get(rest) == Some(&b'{') {
            group_heads(&code[rest..])
        } else {
            vec![ident_at(&code[rest..])]
        };
        out.extend(
            names
                .into_iter()
                .filter(|n| !n.is_empty())
                .map(|n| (n, line)),
        );
        i = rest;
    }
    out
}

/// The first identifier of each item of a `{a::b, c, d::{e}}` use group.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    for (k, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                expect_head = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if expect_head && depth == 1 && is_ident(c as u8) => {
                heads.push(ident_at(&s[k..]));
                expect_head = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident_at(s: &str) -> String {
    s.bytes()
        .take_while(|&c| is_ident(c))
        .map(char::from)
        .collect()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The text with comments and string/char literals replaced by spaces (newlines kept).
fn blank_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        let end = if rest.starts_with("//") {
            i + rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            i + rest.find("*/").map_or(rest.len(), |e| e + 2)
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].bytes().take_while(|&c| c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i + body
                + rest[body..]
                    .find(&close)
                    .map_or(rest.len(), |e| e + close.len())
        } else if b[i] == b'"' && (i == 0 || !is_ident(b[i - 1])) {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i + 2 + rest[2..].find('\'').map_or(rest.len(), |e| e + 1)
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i + 3
        } else {
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end;
    }
    String::from_utf8(out).expect("only ASCII bytes were replaced")
}

/// The code without each `#[cfg(test)]` item (up to its closing brace or semicolon).
fn drop_cfg_test(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(k) = out[from..].find("#[cfg(test)]") {
        let start = from + k;
        let b = out.as_bytes();
        let mut depth = 0;
        let mut end = b.len();
        for (j, &c) in b.iter().enumerate().skip(start + "#[cfg(test)]".len()) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                _ => {}
            }
        }
        let blanked: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blanked);
        from = end;
    }
    out
}

/// A cycle as a closed path `[a, b, .., a]`, if the graph has one (depth-first search).
fn find_cycle(nodes: &BTreeSet<String>, edges: &Edges) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &Edges,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for (_, m) in edges.keys().filter(|(a, _)| a == n) {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).expect("on the stack");
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    let mut stack = Vec::new();
    nodes.iter().find_map(|n| {
        (state.get(n).copied().unwrap_or(0) == 0)
            .then(|| visit(n, edges, &mut state, &mut stack))
            .flatten()
    })
}
