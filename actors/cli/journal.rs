//! `status`, `journal verify`, `journal replay` and `trace`: what the journal says.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::events::CorrelationId;
use crate::journal::Journal;

use super::{load_config, Format};

fn open_journal(config: Option<&PathBuf>, journal: Option<PathBuf>) -> Result<Journal, ExitCode> {
    let path = match journal {
        Some(p) => p,
        None => {
            let config = load_config(config)?;
            config.resolve(&config.journal.path)
        }
    };
    if !path.exists() {
        eprintln!("error: no journal at {}", path.display());
        return Err(ExitCode::from(2));
    }
    Journal::open(&path, crate::journal::SyncMode::Normal).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub(super) fn status(
    config: Option<PathBuf>,
    journal: Option<PathBuf>,
    limit: usize,
    format: Format,
) -> ExitCode {
    let journal = match open_journal(config.as_ref(), journal) {
        Ok(j) => j,
        Err(code) => return code,
    };
    match crate::journal::status::view(&journal, limit) {
        Ok(view) => {
            match format {
                Format::Table => print!(
                    "{}{}",
                    crate::journal::status::trading_line(&view.trading),
                    crate::journal::status::table(&view.workflows)
                ),
                Format::Json => match serde_json::to_string_pretty(&view) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

pub(super) fn journal_verify(config: Option<PathBuf>, journal: Option<PathBuf>) -> ExitCode {
    let journal = match open_journal(config.as_ref(), journal) {
        Ok(j) => j,
        Err(code) => return code,
    };
    match journal.verify() {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            match report.first_broken {
                None => ExitCode::SUCCESS,
                Some((seq, why)) => {
                    eprintln!("error: journal broken at seq {seq}: {why}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: journal unreadable: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The entries of one correlation, replayed into a fresh causation log.
fn rebuild(
    journal: &Journal,
    id: &str,
) -> Result<
    (
        CorrelationId,
        crate::causation::CausationLog,
        Vec<crate::journal::JournalEntry>,
    ),
    (ExitCode, String),
> {
    let bad_input = |message: String| (ExitCode::from(2), message);
    let correlation: CorrelationId = id
        .parse()
        .map_err(|e| bad_input(format!("`{id}` is not a correlation id: {e}")))?;
    let entries = journal
        .correlation(&correlation)
        .map_err(|e| bad_input(e.to_string()))?;
    if entries.is_empty() {
        return Err(bad_input(format!(
            "no events for correlation {id} in the journal"
        )));
    }
    let mut log = crate::causation::CausationLog::new(1);
    let now = std::time::Instant::now();
    for e in &entries {
        log.record(&e.envelope, e.seq, || now)
            .map_err(|r| (ExitCode::FAILURE, format!("seq {}: {r}", e.seq)))?;
    }
    Ok((correlation, log, entries))
}

pub(super) fn journal_replay(
    config: Option<PathBuf>,
    journal: Option<PathBuf>,
    id: &str,
    format: Format,
) -> ExitCode {
    let journal = match open_journal(config.as_ref(), journal) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let (correlation, log, entries) = match rebuild(&journal, id) {
        Ok(found) => found,
        Err((code, e)) => {
            eprintln!("error: {e}");
            return code;
        }
    };
    let summary = log.workflow(&correlation, std::time::Instant::now());
    match format {
        Format::Json => {
            let events: Vec<_> = entries
                .iter()
                .map(|e| serde_json::json!({"seq": e.seq, "event_type": e.envelope.event_type(), "source": e.envelope.source, "occurred_at": e.envelope.occurred_at, "says": e.envelope.payload.describe()}))
                .collect();
            let out = serde_json::json!({"correlation_id": correlation, "stage": summary.as_ref().map(|s| s.stage), "status": summary.as_ref().map(|s| s.status), "orders_placed": summary.as_ref().map(|s| s.orders_placed), "failure": summary.and_then(|s| s.failure), "events": events});
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        Format::Table => {
            let mut out = format!("workflow {correlation}");
            if let Some(s) = &summary {
                out.push_str(&format!(
                    ": {} at {}, {} order{} placed",
                    s.status,
                    s.stage,
                    s.orders_placed,
                    if s.orders_placed == 1 { "" } else { "s" }
                ));
                if let Some(failure) = &s.failure {
                    out.push_str(&format!(", failed: {failure}"));
                }
            }
            out.push('\n');
            for e in &entries {
                out.push_str(&format!(
                    "{:>6}  {}  {}  [{}]  {}\n",
                    e.seq,
                    e.envelope.occurred_at.format("%Y-%m-%d %H:%M:%S%.3f"),
                    e.envelope.event_type(),
                    e.envelope.source,
                    e.envelope.payload.describe()
                ));
            }
            print!("{out}");
        }
    }
    ExitCode::SUCCESS
}

pub(super) fn trace(
    config: Option<PathBuf>,
    journal: Option<PathBuf>,
    id: &str,
    format: Format,
) -> ExitCode {
    let journal = match open_journal(config.as_ref(), journal) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let (correlation, log, entries) = match rebuild(&journal, id) {
        Ok(found) => found,
        Err((code, e)) => {
            eprintln!("error: {e}");
            return code;
        }
    };
    let Some(tree) = log.tree(&correlation) else {
        eprintln!("error: no causation tree for {id}");
        return ExitCode::FAILURE;
    };
    // What each event says, by sequence number.
    let says: std::collections::HashMap<u64, String> = entries
        .iter()
        .map(|e| (e.seq, e.envelope.payload.describe()))
        .collect();
    let stage = tree
        .stage
        .map_or_else(|| "standalone chain".to_string(), |s| s.to_string());
    match format {
        Format::Json => {
            let out = serde_json::json!({
                "correlation_id": correlation,
                "stage": stage,
                "root": said(&tree.root, &says),
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        Format::Table => {
            fn print(
                node: &crate::causation::TreeNode,
                depth: usize,
                says: &std::collections::HashMap<u64, String>,
                out: &mut String,
            ) {
                out.push_str(&format!(
                    "{:>6}  {}{}  [{}]  {}  {}\n",
                    node.seq,
                    "  ".repeat(depth),
                    node.event_type,
                    node.source,
                    node.occurred_at.format("%Y-%m-%d %H:%M:%S%.3f"),
                    says.get(&node.seq).map_or("", String::as_str)
                ));
                for child in &node.children {
                    print(child, depth + 1, says, out);
                }
            }
            let mut out = format!("workflow {correlation} ({stage})\n");
            print(&tree.root, 0, &says, &mut out);
            print!("{out}");
        }
    }
    ExitCode::SUCCESS
}

/// A causation tree node as JSON, with what its event says.
fn said(
    node: &crate::causation::TreeNode,
    says: &std::collections::HashMap<u64, String>,
) -> serde_json::Value {
    serde_json::json!({
        "seq": node.seq,
        "event_type": node.event_type,
        "source": node.source,
        "occurred_at": node.occurred_at,
        "says": says.get(&node.seq),
        "children": node.children.iter().map(|c| said(c, says)).collect::<Vec<_>>(),
    })
}
