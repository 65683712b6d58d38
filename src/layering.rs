//! The layers below the adapters, checked on the source so an import cycle
//! cannot come back unnoticed (the compiler accepts cycles inside one crate).
//!
//! From the bottom: `secret`, `units`, `event`, `signing` (leaves) → `domain`
//! (shared words: cards, roles, statuses, masking, ID documents, phones,
//! embeddings) → `config` → `access` (the pure decision) → `store` (the only
//! path to SQLite; it builds `access::Register`) → `enrol`, `face`, `uplink` …
//! → `daemon` → the adapters (`console`, `lpr`, `site`, `control`) → `app`
//! (the composition root) → `cli`. A module may import from below, never from
//! above, and no two modules import each other, even through others.

use std::collections::BTreeSet;
use std::path::Path;

/// Modules `module` must not import (those above it).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "config",
        &[
            "access",
            "app",
            "cli",
            "console",
            "control",
            "daemon",
            "doctor",
            "enrol",
            "face",
            "http_server",
            "hw",
            "lpr",
            "metrics",
            "models",
            "site",
            "station",
            "store",
            "uplink",
            "wiegand",
        ],
    ),
    (
        "access",
        &[
            "app", "cli", "console", "control", "daemon", "doctor", "enrol", "face", "lpr", "site",
            "station", "store", "uplink",
        ],
    ),
    (
        "store",
        &[
            "app", "cli", "console", "control", "daemon", "doctor", "enrol", "face", "lpr", "site",
            "station", "uplink",
        ],
    ),
    ("models", &["app", "cli", "daemon", "face", "onnx", "store"]),
    // The daemon decides and records; the adapters around it (console,
    // uplink, LPR, site link, control socket) are wired in by `app`.
    (
        "daemon",
        &[
            "app", "cli", "console", "control", "doctor", "lpr", "site", "station", "uplink",
        ],
    ),
    ("app", &["cli"]),
];

/// The only modules each bottom module may import.
const ALLOWED_ONLY: &[(&str, &[&str])] = &[
    ("secret", &[]),
    ("units", &[]),
    ("event", &[]),
    ("signing", &[]),
    ("domain", &["secret"]),
];

/// The crate's top-level modules that the source of `module` (a `src/<module>.rs`
/// file, a `src/<module>/` tree, or both) names through `crate::`. Comments
/// are skipped: a doc link is not a dependency.
fn imports_of(src: &Path, module: &str) -> (usize, BTreeSet<String>) {
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let dir = src.join(module);
    if dir.is_dir() {
        collect_rs(&dir, &mut files);
    }
    let mut found = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
        for m in crate_paths(&text) {
            if m != module {
                found.insert(m);
            }
        }
    }
    (files.len(), found)
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// First segments after `crate::`, including grouped imports
/// (`use crate::{face, store::Store}` names `face` and `store`).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `gatehouse_crate::` or similar, not this crate
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    out.insert(first.to_string());
                }
            }
            continue;
        }
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !ident.is_empty() {
            out.insert(ident);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn lower_layers_never_import_the_layers_above_them() {
        let mut broken = Vec::new();
        for (module, forbidden) in FORBIDDEN {
            let (files, imports) = imports_of(&src(), module);
            assert!(files > 0, "no source found for module {module}");
            for m in imports.iter().filter(|m| forbidden.contains(&m.as_str())) {
                broken.push(format!("{module} imports crate::{m}"));
            }
        }
        assert!(broken.is_empty(), "layering broken: {broken:?}");
    }

    #[test]
    fn the_bottom_modules_import_only_what_lies_below_them() {
        let mut broken = Vec::new();
        for (module, allowed) in ALLOWED_ONLY {
            let (files, imports) = imports_of(&src(), module);
            assert!(files > 0, "no source found for module {module}");
            for m in imports.iter().filter(|m| !allowed.contains(&m.as_str())) {
                broken.push(format!("{module} imports crate::{m}"));
            }
        }
        assert!(broken.is_empty(), "layering broken: {broken:?}");
    }

    /// Top-level modules of the crate: `src/<m>.rs` files and `src/<m>/` folders.
    fn modules(src: &Path) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for entry in std::fs::read_dir(src).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() || path.extension().is_some_and(|e| e == "rs") {
                out.insert(name);
            }
        }
        for not_a_layer in ["lib", "main", "layering"] {
            out.remove(not_a_layer);
        }
        out
    }

    #[test]
    fn no_two_modules_import_each_other_even_through_others() {
        let src = src();
        let all = modules(&src);
        let graph: std::collections::BTreeMap<String, BTreeSet<String>> = all
            .iter()
            .map(|m| {
                let (_, imports) = imports_of(&src, m);
                (m.clone(), imports.intersection(&all).cloned().collect())
            })
            .collect();
        // Depth-first search; a module met again on the current path closes a cycle.
        fn visit(
            m: &str,
            graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
            cycles: &mut Vec<String>,
        ) {
            if let Some(i) = path.iter().position(|p| p == m) {
                cycles.push(format!("{} -> {m}", path[i..].join(" -> ")));
                return;
            }
            if done.contains(m) {
                return;
            }
            path.push(m.to_string());
            for next in &graph[m] {
                visit(next, graph, path, done, cycles);
            }
            path.pop();
            done.insert(m.to_string());
        }
        let (mut done, mut cycles) = (BTreeSet::new(), Vec::new());
        for m in graph.keys() {
            visit(m, &graph, &mut Vec::new(), &mut done, &mut cycles);
        }
        assert!(cycles.is_empty(), "import cycles: {cycles:?}");
        // The scan found the crate: a typo in the walk must not pass silently.
        assert!(graph["daemon"].contains("store"), "{graph:?}");
    }

    #[test]
    fn the_scanner_sees_plain_grouped_and_nested_paths_but_not_comments() {
        let text = "use crate::face::gallery::dot;\n\
                    use crate::{store::Store, enrol};\n\
                    let x = crate::uplink::run();\n\
                    // crate::daemon in a comment\n\
                    /// [`crate::console`] in a doc link\n";
        let found: Vec<String> = crate_paths(text).into_iter().collect();
        assert_eq!(found, ["enrol", "face", "store", "uplink"]);
    }
}
