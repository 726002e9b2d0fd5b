//! The architecture as a test: `src/` (the core) never touches the actor runtime, and
//! no business module imports another (they share only events and domain types).

use std::path::{Path, PathBuf};

const BUSINESS: &[&str] = &[
    "strategy",
    "portfolio",
    "execution",
    "reconciliation",
    "recovery",
    "notify",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files that make up business module `name`, in the core and in the actor layer.
fn module_files(name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for base in [root().join("src"), root().join("actors")] {
        let file = base.join(format!("{name}.rs"));
        if file.exists() {
            files.push(file);
        }
        rust_files(&base.join(name), &mut files);
    }
    files
}

/// Code lines only: comments and doc comments may name other modules.
fn code(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.starts_with("//"))
        .collect()
}

/// Paths by which `from`'s code could reach business module `to`.
fn references(to: &str) -> Vec<String> {
    vec![
        format!("crate::{to}"),
        format!("super::{to}"),
        format!("actors::{to}"),
        format!("alchemiser::{to}"),
        format!("{{{to},"),
        format!(", {to}}}"),
        format!(", {to},"),
    ]
}

fn violations() -> Vec<String> {
    let mut found = Vec::new();
    for from in BUSINESS {
        let files = module_files(from);
        assert!(!files.is_empty(), "business module {from} has files");
        for file in files {
            for (line_no, line) in code(&file) {
                for to in BUSINESS.iter().filter(|t| *t != from) {
                    if references(to).iter().any(|r| line.contains(r.as_str())) {
                        found.push(format!(
                            "{}:{line_no}: {from} imports {to}: {line}",
                            file.display()
                        ));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn business_modules_do_not_import_one_another() {
    let found = violations();
    assert!(
        found.is_empty(),
        "cross-module imports:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rule_catches_a_cross_import() {
    // The detector itself must see an import when there is one.
    let line = "use crate::portfolio::plan_rebalance;";
    assert!(references("portfolio")
        .iter()
        .any(|r| line.contains(r.as_str())));
    let grouped = "use super::{execution, portfolio};";
    assert!(references("execution")
        .iter()
        .any(|r| grouped.contains(r.as_str())));
}

#[test]
fn the_core_has_no_actor_runtime() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut found = Vec::new();
    for file in files {
        for (line_no, line) in code(&file) {
            // lib.rs mounts the actor layer as a module; that line is the only link.
            if line.starts_with("#[path = \"../actors/mod.rs\"]") || line == "pub mod actors;" {
                continue;
            }
            if line.contains("actix") {
                found.push(format!("{}:{line_no}: {line}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "actix in the core:\n{}", found.join("\n"));
}

/// Layers of `actors/`, lowest first: a module imports only from lower layers, so the
/// arrows point one way (drivers → engine wiring → broker and supervision → deps and
/// the core). A module's own submodules (`drill/`) are its own business.
const ACTOR_LAYERS: &[&[&str]] = &[
    &["deps"],
    &["supervision"],
    &[
        "broker",
        "strategy",
        "portfolio",
        "execution",
        "reconciliation",
        "recovery",
        "notify",
    ],
    &["engine"],
    &["control", "observe", "backtest", "remote"],
    &["sweep"],
    &["sweep_queue"],
    &["replay", "drill"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    ACTOR_LAYERS.iter().position(|l| l.contains(&module))
}

/// The `actors/` modules a line of `actors/<module>/...` imports.
fn actor_imports(line: &str, own_submodules: bool) -> Vec<String> {
    let mut found = Vec::new();
    let mut take = |rest: &str| {
        let rest = rest.trim_start_matches('{');
        for part in rest.split([',', '{', '}', ' ', ':', ';']) {
            let name = part.trim();
            if layer_of(name).is_some() {
                found.push(name.to_string());
                break;
            }
        }
    };
    for prefix in ["crate::actors::", "alchemiser::actors::", "super::super::"] {
        for (i, _) in line.match_indices(prefix) {
            take(&line[i + prefix.len()..]);
        }
    }
    if !own_submodules {
        for (i, _) in line.match_indices("super::") {
            if !line[..i].ends_with("super::") && !line[i..].starts_with("super::super::") {
                take(&line[i + "super::".len()..]);
            }
        }
    }
    // `use crate::actors::{execution, portfolio}` names several.
    if let Some(i) = line.find("crate::actors::{") {
        let group = &line[i + "crate::actors::{".len()..];
        let group = group.split('}').next().unwrap_or("");
        found.extend(
            group
                .split(',')
                .map(str::trim)
                .filter(|m| layer_of(m).is_some())
                .map(String::from),
        );
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn actor_modules_import_only_lower_layers() {
    let mut found = Vec::new();
    let mut files = Vec::new();
    rust_files(&root().join("actors"), &mut files);
    for file in files {
        let rel = file.strip_prefix(root().join("actors")).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "mod" {
            continue;
        }
        let Some(layer) = layer_of(&module) else {
            found.push(format!("actors/{module} has no layer in ACTOR_LAYERS"));
            continue;
        };
        let nested = rel.components().count() > 1;
        for (line_no, line) in code(&file) {
            for to in actor_imports(&line, nested) {
                let ok = to == module || layer_of(&to).is_some_and(|l| l < layer);
                if !ok {
                    found.push(format!(
                        "{}:{line_no}: {module} imports {to}: {line}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "imports against the layers:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_layer_rule_catches_an_upward_import() {
    assert_eq!(
        actor_imports("use super::broker::Broker;", false),
        ["broker"]
    );
    assert_eq!(
        actor_imports("use super::super::engine::EngineDeps;", true),
        ["engine"]
    );
    assert!(actor_imports("use super::rig::Rig;", true).is_empty());
    assert_eq!(
        actor_imports("use crate::actors::{execution, portfolio};", false),
        ["execution", "portfolio"]
    );
}
