//! `status`, `journal verify`, `journal replay` and `trace`: what the journal says.

use std::path::PathBuf;

use crate::events::CorrelationId;
use crate::journal::Journal;

use super::error::CliError;
use super::{load_config, Format};

fn open_journal(config: Option<&PathBuf>, journal: Option<PathBuf>) -> Result<Journal, CliError> {
    let path = match journal {
        Some(p) => p,
        None => {
            let config = load_config(config)?;
            config.resolve(&config.journal.path)
        }
    };
    if !path.exists() {
        return Err(CliError::input(format!("no journal at {}", path.display())));
    }
    Journal::open(&path, crate::journal::SyncMode::Normal).map_err(CliError::input)
}

/// The running engine's view of its remote actors (`/healthz`), when it gives roles to
/// workers: `None` when it does not; an error when it does not answer.
fn remote_actors(config: &crate::config::Config) -> Option<Result<serde_json::Value, String>> {
    use std::io::{Read, Write};
    if config.bus.remote_roles.is_empty() || !config.metrics.enabled {
        return None;
    }
    let listen = &config.metrics.listen;
    let ask = || -> std::io::Result<String> {
        let addr: std::net::SocketAddr = listen
            .parse()
            .map_err(|_| std::io::Error::other("metrics.listen is not an address"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        write!(s, "GET /healthz HTTP/1.0\r\nHost: {listen}\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    };
    Some(
        ask()
            .map_err(|e| format!("the engine does not answer on {listen} ({e}): not running?"))
            .and_then(|text| {
                let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                serde_json::from_str::<serde_json::Value>(body)
                    .map(|v| v["remote"].clone())
                    .map_err(|e| format!("unreadable /healthz from {listen}: {e}"))
            }),
    )
}

/// The remote actors as lines for people.
fn remote_lines(remote: &Result<serde_json::Value, String>) -> String {
    let r = match remote {
        Ok(r) => r,
        Err(e) => return format!("remote actors: {e}\n"),
    };
    let list = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let mut out = format!("remote roles: {}", list(&r["roles"]));
    let unserved = list(&r["unserved"]);
    if !unserved.is_empty() {
        out.push_str(&format!(" — NO LIVE WORKER for {unserved}"));
    }
    out.push('\n');
    for w in r["workers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  worker {} ({}): {} handled, {} redelivered, {} failed, heard {} s ago\n",
            w["worker"].as_str().unwrap_or("?"),
            list(&w["roles"]),
            w["handled"],
            w["redelivered"],
            w["failed"],
            w["seconds_since_heartbeat"]
        ));
    }
    for (name, lag) in r["consumers"].as_object().into_iter().flatten() {
        out.push_str(&format!(
            "  consumer {name}: {} waiting, {} in flight, {} redelivered\n",
            lag["pending"], lag["ack_pending"], lag["redelivered"]
        ));
    }
    out
}

pub(super) fn status(
    config: Option<PathBuf>,
    journal: Option<PathBuf>,
    limit: usize,
    format: Format,
) -> Result<(), CliError> {
    let loaded = crate::config::Config::load_or_default(config.as_ref()).ok();
    let remote = loaded.as_ref().and_then(remote_actors);
    // A halt or resume no engine has taken yet: `trading` below is the journal's word.
    let pending = loaded.as_ref().and_then(|c| {
        crate::actors::control::ControlFiles::new(c.resolve(&c.engine.control_dir)).pending()
    });
    let journal = open_journal(config.as_ref(), journal)?;
    let view = crate::journal::status::view(&journal, limit).map_err(CliError::input)?;
    {
        {
            match format {
                Format::Table => out!(
                    "{}{}{}{}",
                    pending
                        .as_ref()
                        .map(|(what, path)| format!(
                            "request pending: {what} ({}), not yet taken by an engine: a running one takes it within a second, a stopped one at its next start\n",
                            path.display()
                        ))
                        .unwrap_or_default(),
                    crate::journal::status::trading_line(&view.trading),
                    remote.as_ref().map(remote_lines).unwrap_or_default(),
                    crate::journal::status::table(&view.workflows)
                ),
                Format::Json => match serde_json::to_value(&view)
                    .map(|mut v| {
                        if let (Some((what, _)), Some(map)) = (&pending, v.as_object_mut()) {
                            map.insert("pending_request".into(), (*what).into());
                        }
                        if let (Some(r), Some(map)) = (&remote, v.as_object_mut()) {
                            map.insert(
                                "remote".into(),
                                match r {
                                    Ok(r) => r.clone(),
                                    Err(e) => serde_json::json!({ "error": e }),
                                },
                            );
                        }
                        v
                    })
                    .and_then(|v| serde_json::to_string_pretty(&v))
                {
                    Ok(j) => outln!("{j}"),
                    Err(e) => return Err(CliError::failed(e)),
                },
            }
            Ok(())
        }
    }
}

pub(super) fn journal_verify(
    config: Option<PathBuf>,
    journal: Option<PathBuf>,
) -> Result<(), CliError> {
    let journal = open_journal(config.as_ref(), journal)?;
    let report = journal
        .verify()
        .map_err(|e| CliError::failed(format!("journal unreadable: {e}")))?;
    outln!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    match report.first_broken {
        None => Ok(()),
        Some((seq, why)) => Err(CliError::failed(format!(
            "journal broken at seq {seq}: {why}"
        ))),
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
    CliError,
> {
    let bad_input = CliError::Input;
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
            .map_err(|r| CliError::failed(format!("seq {}: {r}", e.seq)))?;
    }
    Ok((correlation, log, entries))
}

pub(super) fn journal_replay(
    config: Option<PathBuf>,
    journal: Option<PathBuf>,
    id: &str,
    format: Format,
) -> Result<(), CliError> {
    let journal = open_journal(config.as_ref(), journal)?;
    let (correlation, log, entries) = rebuild(&journal, id)?;
    let summary = log.workflow(&correlation, std::time::Instant::now());
    match format {
        Format::Json => {
            let events: Vec<_> = entries
                .iter()
                .map(|e| serde_json::json!({"seq": e.seq, "event_type": e.envelope.event_type(), "source": e.envelope.source, "occurred_at": e.envelope.occurred_at, "says": e.envelope.payload.describe()}))
                .collect();
            let out = serde_json::json!({"correlation_id": correlation, "stage": summary.as_ref().map(|s| s.stage), "status": summary.as_ref().map(|s| s.status), "orders_placed": summary.as_ref().map(|s| s.orders_placed), "failure": summary.and_then(|s| s.failure), "events": events});
            outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
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
            out!("{out}");
        }
    }
    Ok(())
}

pub(super) fn trace(
    config: Option<PathBuf>,
    journal: Option<PathBuf>,
    id: &str,
    format: Format,
) -> Result<(), CliError> {
    let journal = open_journal(config.as_ref(), journal)?;
    let (correlation, log, entries) = rebuild(&journal, id)?;
    let tree = log
        .tree(&correlation)
        .ok_or_else(|| CliError::failed(format!("no causation tree for {id}")))?;
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
            outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
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
            out!("{out}");
        }
    }
    Ok(())
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
