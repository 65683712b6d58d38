//! The layers below the adapters, checked on the source so an import cycle
//! cannot come back unnoticed (the compiler accepts cycles inside one crate).
//!
//! From the bottom: `secret` and `units` (leaves) → `domain` (shared words:
//! cards, roles, statuses, masking, ID documents, phones, embeddings) →
//! `config` → `access` (the pure decision) → `store` (the only path to
//! SQLite; it builds `access::Register`) → `enrol`, `face`, `uplink` … →
//! `daemon`, `console`, `cli`. A module may import from below, never from above.

use std::collections::BTreeSet;
use std::path::Path;

/// Modules `module` must not import (those above it).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "config",
        &[
            "access", "cli", "console", "control", "daemon", "demo", "doctor", "enrol", "face",
            "lpr", "site", "station", "store", "uplink",
        ],
    ),
    (
        "access",
        &[
            "cli", "console", "control", "daemon", "demo", "doctor", "enrol", "face", "lpr",
            "site", "station", "store", "uplink",
        ],
    ),
    (
        "store",
        &[
            "cli", "console", "control", "daemon", "demo", "doctor", "enrol", "face", "lpr",
            "site", "station", "uplink",
        ],
    ),
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
