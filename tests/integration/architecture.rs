//! The architecture as a test, where the compiler does not hold it: the crates below
//! the engine name no actor runtime in their manifests, no business module imports
//! another (they share only events and domain types), the engine's actors import only
//! lower layers, and no crate's modules import one another in a cycle. That crates
//! import only the crates below them the compiler holds (`Cargo.toml`).

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
    for base in [
        root().join("crates/core/src"),
        root().join("crates/adapters/src"),
        root().join("crates/engine/src/actors"),
    ] {
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

/// The names under `[dependencies]` of `crates/<name>/Cargo.toml`.
fn dependencies(name: &str) -> Vec<String> {
    let path = root().join("crates").join(name).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: toml::Table = text.parse().unwrap();
    manifest["dependencies"]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// Crates a lower layer must not depend on: the core does no I/O and runs no runtime;
/// the adapters do I/O but leave the actor runtime to the engine.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "actix",
            "actix-rt",
            "tokio",
            "rusqlite",
            "reqwest",
            "async-nats",
            "axum",
            "lettre",
            "alchemiser-adapters",
            "alchemiser-engine",
        ],
    ),
    ("adapters", &["actix", "actix-rt", "alchemiser-engine"]),
];

#[test]
fn the_lower_crates_depend_on_no_runtime_above_them() {
    let mut found = Vec::new();
    for (krate, forbidden) in FORBIDDEN {
        let deps = dependencies(krate);
        assert!(
            deps.iter().any(|d| d == "serde"),
            "{krate}'s manifest is read"
        );
        for dep in deps.iter().filter(|d| forbidden.contains(&d.as_str())) {
            found.push(format!("crates/{krate} depends on {dep}"));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Layers of the engine's `actors/`, lowest first: a module imports only from lower
/// layers, so the arrows point one way (runtime and drivers' entry points → engine
/// wiring → broker and supervision → deps). A module's own submodules (`broker/`) are
/// its own business. The drivers above (command line, drills, sweeps) are another
/// crate: the compiler keeps the engine from reaching them.
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
    let actors = root().join("crates/engine/src/actors");
    rust_files(&actors, &mut files);
    assert!(files.len() > 15, "the engine's actors are found");
    for file in files {
        let rel = file.strip_prefix(&actors).unwrap();
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

/// The `crate::` modules of the crate each top-level module of `crates/<name>/src` uses
/// outside its tests (modules re-exported from a lower crate are not the crate's own).
fn module_graph(
    name: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let dirs = [root().join("crates").join(name).join("src")];
    let mut modules = std::collections::BTreeMap::new();
    for src in &dirs {
        for entry in std::fs::read_dir(src).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let name = name.trim_end_matches(".rs").to_string();
            if name != "lib" && name != "main" {
                modules.insert(name, src.clone());
            }
        }
    }
    let mut graph = std::collections::BTreeMap::new();
    for (module, src) in &modules {
        let mut files = Vec::new();
        let file = src.join(format!("{module}.rs"));
        if file.exists() {
            files.push(file);
        }
        rust_files(&src.join(module), &mut files);
        let mut uses = std::collections::BTreeSet::new();
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            if name == "tests.rs" || name == "sample.rs" {
                continue;
            }
            let lines = code(&file);
            // Up to the file's test module (a `mod tests;` declaration is not one).
            let end = lines
                .windows(2)
                .position(|w| w[0].1 == "#[cfg(test)]" && w[1].1.starts_with("mod tests {"))
                .unwrap_or(lines.len());
            for (_, line) in &lines[..end] {
                for (at, _) in line.match_indices("crate::") {
                    let rest = &line[at + "crate::".len()..];
                    let to: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if modules.contains_key(&to) && &to != module {
                        uses.insert(to);
                    }
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn a_cycle(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        at: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == at) {
            let mut cycle = path[start..].to_vec();
            cycle.push(at.to_string());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn each_crates_modules_import_one_another_without_a_cycle() {
    let core = module_graph("core");
    assert!(core.len() > 20, "the core's modules are found: {core:?}");
    assert!(
        core["engine_core"].contains("causation"),
        "imports are read"
    );
    let adapters = module_graph("adapters");
    assert!(adapters.len() > 8, "the adapters are found: {adapters:?}");
    assert!(adapters["bus"].contains("journal"), "imports are read");
    for (name, graph) in [("core", core), ("adapters", adapters)] {
        if let Some(cycle) = a_cycle(&graph) {
            panic!("{name}'s modules import in a cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_cycle_rule_catches_a_cycle() {
    let mut graph = std::collections::BTreeMap::new();
    let edge = |to: &str| std::collections::BTreeSet::from([to.to_string()]);
    graph.insert("config".to_string(), edge("bus"));
    graph.insert("bus".to_string(), edge("metrics"));
    graph.insert("metrics".to_string(), std::collections::BTreeSet::new());
    assert_eq!(a_cycle(&graph), None);
    graph.insert("metrics".to_string(), edge("config"));
    assert_eq!(
        a_cycle(&graph),
        Some(vec![
            "bus".into(),
            "metrics".into(),
            "config".into(),
            "bus".into()
        ])
    );
}

/// Lines of the tests, examples and benchmarks that name a folder beside the repository:
/// a user's clone has none, so nothing may read one (the data they use is carried in
/// `examples/`).
fn reaches_outside(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|e| e == "toml" || e == "py" || e == "clj")
        {
            files.push(path);
        }
    }
    // Spelled in pieces, so that this file does not name what it looks for.
    let (beside, python_beside) = (["..", "/shared"].concat(), ["parents", "[2]"].concat());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains(&beside) || line.contains(&python_beside) {
                found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn nothing_reads_outside_the_repository() {
    let mut found = Vec::new();
    for dir in ["tests", "examples", "examples/strategies", "benches"] {
        found.extend(reaches_outside(&root().join(dir)));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    let planted = tempfile::tempdir().unwrap();
    let outside = format!("data = \"../{}/data/lean\"\n", ["..", "/shared"].concat());
    std::fs::write(planted.path().join("x.toml"), outside).unwrap();
    assert_eq!(
        reaches_outside(planted.path()).len(),
        1,
        "the check sees a path outside"
    );
}
