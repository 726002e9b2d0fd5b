//! The event bus over NATS JetStream, against a real `nats-server` (Debian's package)
//! started here on 127.0.0.1 with JetStream in a temporary folder: every event the
//! broker accepts reaches the stream once, in journal order, with its ids as headers;
//! an unreachable bus holds new workflows; a stream that lost its data is given back
//! what it lacks from the journal, and nothing is ever there twice. `.ci/run` installs
//! nats-server and sets `ALCHEMISER_REQUIRE_NATS=1`, so there these tests cannot skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::nats;
use nats::{free_port, nats_server_binary, NatsServer};

use alchemiser::journal::{Journal, SyncMode};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write_config(dir: &Path, port: u16) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[strategy]\ndata = {data:?}\n[[strategy.files]]\npath = {strategy:?}\n\
             [venue.sim]\nstate_file = \"state/sim.json\"\n[journal]\npath = \"state/journal.sqlite\"\n\
             [engine]\ncontrol_dir = \"state\"\n[metrics]\nenabled = false\n\
             [bus]\ntransport = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\nstream = \"ALC_TEST\"\n\
             subject_prefix = \"alchemiser.acct1\"\nconnect_timeout_secs = 2\n",
            data = root().join("examples/data"),
            strategy = root().join("examples/strategies/default.clj"),
        ),
    )
    .unwrap();
    config
}

fn run_once(dir: &Path, config: &Path) -> std::process::Output {
    run_once_as(dir, config, &[])
}

/// The stream's messages: (stream seq, subject, Nats-Msg-Id, Alchemiser-Seq, payload).
fn stream_messages(port: u16) -> Vec<(u64, String, String, u64, serde_json::Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream("ALC_TEST").await.unwrap();
        let info = stream.info().await.unwrap().clone();
        let mut out = Vec::new();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            if info.state.messages == 0 {
                break;
            }
            let m = stream.get_raw_message(seq).await.unwrap();
            let header = |name: &str| m.headers.get(name).unwrap().as_str().to_string();
            out.push((
                m.sequence,
                m.subject.to_string(),
                header("Nats-Msg-Id"),
                header("Alchemiser-Seq").parse().unwrap(),
                serde_json::from_slice(&m.payload).unwrap(),
            ));
        }
        out
    })
}

/// The stream is the journal: one message per entry, in order, each under its type's
/// subject with its event id and seq.
fn assert_stream_is_the_journal(dir: &Path, port: u16) -> usize {
    let journal = Journal::open(&dir.join("state/journal.sqlite"), SyncMode::Normal).unwrap();
    let entries = journal.entries().unwrap();
    let messages = stream_messages(port);
    assert_eq!(
        messages.len(),
        entries.len(),
        "stream {} messages, journal {} entries",
        messages.len(),
        entries.len()
    );
    for (entry, (_, subject, msg_id, seq, payload)) in entries.iter().zip(&messages) {
        assert_eq!(*seq, entry.seq);
        assert_eq!(*msg_id, entry.envelope.event_id.to_string());
        assert_eq!(
            *subject,
            format!("alchemiser.acct1.events.{}", entry.envelope.event_type())
        );
        assert_eq!(payload["event_id"], msg_id.as_str());
        assert_eq!(
            payload["correlation_id"],
            entry.envelope.correlation_id.to_string()
        );
    }
    entries.len()
}

#[test]
fn every_accepted_event_reaches_the_stream_once_in_journal_order() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let config = write_config(dir.path(), port);
    let out = run_once(dir.path(), &config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = assert_stream_is_the_journal(dir.path(), port);
    assert!(n > 10, "{n} events");
    let types: Vec<String> = stream_messages(port).into_iter().map(|m| m.1).collect();
    for t in [
        "workflow.started.v1",
        "strategy.signal.generated.v1",
        "portfolio.rebalance.planned.v1",
        "execution.order.settled.v1",
        "workflow.completed.v1",
    ] {
        assert!(
            types.contains(&format!("alchemiser.acct1.events.{t}")),
            "{t} missing: {types:?}"
        );
    }
}

#[test]
fn an_outage_holds_new_workflows_and_the_stream_gets_back_what_it_lacked() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);

    // No server: the engine starts (its start-up checks are journaled) but holds the
    // day's workflow, then refuses it; nothing trades.
    let down = run_once(dir.path(), &config);
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(!down.status.success());
    assert!(stderr.contains("event bus is unreachable"), "{stderr}");
    let journal =
        Journal::open(&dir.path().join("state/journal.sqlite"), SyncMode::Normal).unwrap();
    let before = journal.entries().unwrap();
    assert!(
        before
            .iter()
            .all(|e| e.envelope.event_type() != "workflow.started.v1"),
        "a workflow started without the bus"
    );
    drop(journal);

    // The server is up: the run completes, and the stream holds every event, those of
    // the refused run's start-up included (republished from the journal).
    let store = dir.path().join("nats-a");
    let nats = NatsServer::start(&binary, port, &store);
    let up = run_once(dir.path(), &config);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let after_second = assert_stream_is_the_journal(dir.path(), port);
    assert!(after_second > before.len());
    drop(nats);

    // The server comes back with its store lost: the next run gives the stream the
    // whole journal again, once.
    let nats = NatsServer::start(&binary, port, &dir.path().join("nats-b"));
    let again = run_once(dir.path(), &config);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let after_third = assert_stream_is_the_journal(dir.path(), port);
    assert!(after_third > after_second);
    drop(nats);

    // And back with the store it had: what it holds is not sent twice.
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats-b"));
    let last = run_once(dir.path(), &config);
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    let after_fourth = assert_stream_is_the_journal(dir.path(), port);
    assert!(after_fourth > after_third);
}

#[test]
fn a_stream_that_holds_another_journal_is_refused_not_skipped() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &first.path().join("nats"));
    let out = run_once(first.path(), &write_config(first.path(), port));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second engine, its own fresh journal, pointed at the same stream: its events
    // would be taken for the first one's, so it refuses to trade — at once, not after
    // waiting out the bus's connect timeout as if it were unreachable.
    let config = write_config(second.path(), port);
    let patient = std::fs::read_to_string(&config)
        .unwrap()
        .replace("connect_timeout_secs = 2", "connect_timeout_secs = 60");
    std::fs::write(&config, patient).unwrap();
    let began = std::time::Instant::now();
    let other = run_once(second.path(), &config);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(
        began.elapsed() < std::time::Duration::from_secs(20),
        "refused at once: {:?}",
        began.elapsed()
    );
    assert!(!stderr.contains("unreachable"), "{stderr}");
    assert!(
        stderr.contains("stream ALC_TEST holds another journal's events"),
        "{stderr}"
    );
    let journal = Journal::open(
        &second.path().join("state/journal.sqlite"),
        SyncMode::Normal,
    )
    .unwrap();
    assert!(journal
        .entries()
        .unwrap()
        .iter()
        .all(|e| e.envelope.event_type() != "workflow.started.v1"));
}

/// A nats-server on `port` that admits only what `authorization` says.
fn server_with_auth(binary: &Path, dir: &Path, port: u16, authorization: &str) -> NatsServer {
    let conf = dir.join("server.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?} }}\nauthorization {{ {authorization} }}\n",
            dir.join("store")
        ),
    )
    .unwrap();
    NatsServer::with_config(binary, port, &conf, &[])
}

fn run_once_as(dir: &Path, config: &Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .current_dir(dir)
        .args(["run", "--once", "--config"])
        .arg(config)
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn the_engine_authenticates_with_a_token_or_an_nkey_seed_and_a_refusal_stops_it_at_once() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    // A token.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _token_server = server_with_auth(&binary, dir.path(), port, "token: \"t0ken-8c1e\"");
    let config = write_config(dir.path(), port);
    let out = run_once_as(
        dir.path(),
        &config,
        &[("ALCHEMISER_NATS_TOKEN", "t0ken-8c1e")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = std::time::Instant::now();
    let out = run_once_as(
        dir.path(),
        &config,
        &[("ALCHEMISER_NATS_TOKEN", "wr0ng-7d2f")],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("NATS at nats://127.0.0.1:{port} refuses a token"))
            && said.contains("authorization violation"),
        "{said}"
    );
    assert!(!said.contains("wr0ng-7d2f"), "{said}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "refused at once, not after the bus's wait"
    );

    // An NKey: the server knows the public key, the engine holds the seed.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let pair = nkeys::KeyPair::new_user();
    let _nkey_server = server_with_auth(
        &binary,
        dir.path(),
        port,
        &format!("users = [ {{ nkey: {} }} ]", pair.public_key()),
    );
    let config = write_config(dir.path(), port);
    let seed = pair.seed().unwrap();
    let out = run_once_as(dir.path(), &config, &[("ALCHEMISER_NATS_NKEY_SEED", &seed)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another key is not admitted; neither is a seed that is not one.
    let other = nkeys::KeyPair::new_user().seed().unwrap();
    let out = run_once_as(
        dir.path(),
        &config,
        &[("ALCHEMISER_NATS_NKEY_SEED", &other)],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = run_once_as(
        dir.path(),
        &config,
        &[("ALCHEMISER_NATS_NKEY_SEED", "SUbroken")],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("ALCHEMISER_NATS_NKEY_SEED is not an NKey user seed"),
        "{said}"
    );
    assert!(!said.contains("SUbroken"), "{said}");
}
