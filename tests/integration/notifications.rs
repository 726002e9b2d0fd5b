//! Notifications from a real `run --once`: e-mail to a real SMTP server (Debian's
//! aiosmtpd, STARTTLS and AUTH required, its certificate from a CA made here) and
//! webhooks to a real HTTP receiver on 127.0.0.1 (generic JSON, Slack, Discord, one
//! that fails twice before it accepts, one whose port is closed). The messages are
//! read back and checked against what the engine did; the secrets never show.
//! `.ci/run` installs python3-aiosmtpd and sets `ALCHEMISER_REQUIRE_SMTP=1`, so there
//! the SMTP tests cannot be skipped.

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

const PASSWORD: &str = "s3cret-smtp-pass";
const SLACK_TOKEN: &str = "T000-slack-token-XYZ";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd on a free port, killed on drop.
struct SmtpServer {
    child: Child,
    port: u16,
    inbox: PathBuf,
    ca: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_server(dir: &Path) -> Option<SmtpServer> {
    let python = "/usr/bin/python3";
    let available = Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            std::env::var_os("ALCHEMISER_REQUIRE_SMTP").is_none(),
            "aiosmtpd is required (apt-get install -y python3-aiosmtpd) but was not found"
        );
        eprintln!("skipped: no aiosmtpd (apt-get install -y python3-aiosmtpd); CI requires it");
        return None;
    }
    // A CA, and the server's certificate for 127.0.0.1 signed by it.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alchemiser test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let port = free_port();
    let mut child = Command::new(python)
        .arg(root().join("tests/support/smtp_receiver.py"))
        .arg(port.to_string())
        .arg(dir.join("server.pem"))
        .arg(dir.join("server.key"))
        .arg(&inbox)
        .args(["alchemiser", PASSWORD])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the SMTP server did not start");
    Some(SmtpServer {
        child,
        port,
        inbox,
        ca,
    })
}

/// What the HTTP receiver got: (hook name, status answered, body).
type Received = Arc<Mutex<Vec<(String, u16, serde_json::Value)>>>;

/// An HTTP receiver on 127.0.0.1: `POST /hook/NAME` records the body; hook `flaky`
/// answers 503 to its first two requests.
fn http_receiver() -> (u16, Received) {
    let received: Received = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = received.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            async fn hook(
                State(r): State<Received>,
                UrlPath(name): UrlPath<String>,
                body: String,
            ) -> StatusCode {
                let mut r = r.lock().unwrap();
                let earlier = r.iter().filter(|(n, _, _)| *n == name).count();
                let status = if name == "flaky" && earlier < 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                r.push((name, status.as_u16(), json));
                status
            }
            let app = Router::new()
                .route("/hook/{name}", post(hook))
                .with_state(state);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (port, received)
}

fn write_config(dir: &Path, smtp: &SmtpServer, http_port: u16, extra: &str) -> PathBuf {
    let closed = free_port();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"{extra}
[strategy]
data = {data:?}
[[strategy.files]]
path = {strategy:?}
[venue.sim]
state_file = "state/sim.json"
[journal]
path = "state/journal.sqlite"
[engine]
control_dir = "state"
[metrics]
enabled = false
[notifications]
backoff_ms = 50
backoff_cap_ms = 100
timeout_secs = 5
[notifications.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
security = "starttls"
from = "alchemiser <engine@example.test>"
to = ["ops@example.test", "Trader <trader@example.test>"]
ca_file = {ca:?}
[[notifications.webhooks]]
url = "http://127.0.0.1:{http_port}/hook/json"
format = "json"
[[notifications.webhooks]]
url_env = "TEST_SLACK_WEBHOOK"
format = "slack"
[[notifications.webhooks]]
url = "http://127.0.0.1:{http_port}/hook/discord"
format = "discord"
[[notifications.webhooks]]
url = "http://127.0.0.1:{http_port}/hook/flaky"
format = "json"
[[notifications.webhooks]]
url = "http://127.0.0.1:{closed}/hook/nobody"
format = "json"
"#,
            data = root().join("examples/data"),
            strategy = root().join("examples/strategies/default.clj"),
            smtp_port = smtp.port,
            ca = smtp.ca,
        ),
    )
    .unwrap();
    config
}

fn run_once(dir: &Path, config: &Path, http_port: u16, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .current_dir(dir)
        .args(["run", "--once", "--config"])
        .arg(config)
        .args(args)
        .env("ALCHEMISER_SMTP_USERNAME", "alchemiser")
        .env("ALCHEMISER_SMTP_PASSWORD", PASSWORD)
        .env(
            "TEST_SLACK_WEBHOOK",
            format!("http://127.0.0.1:{http_port}/hook/slack-{SLACK_TOKEN}"),
        )
        .env("RUST_LOG", "warn,alchemiser=info")
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .output()
        .unwrap()
}

/// The mails received so far: (envelope meta, raw message).
fn mails(inbox: &Path) -> Vec<(serde_json::Value, String)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(inbox)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let meta = std::fs::read_to_string(p.with_extension("json")).unwrap();
            (
                serde_json::from_str(&meta).unwrap(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect()
}

/// A mail's body, unfolded from quoted-printable soft breaks if lettre used them.
fn body(raw: &str) -> String {
    let body = raw.split_once("\r\n\r\n").map_or(raw, |(_, b)| b);
    body.replace("=\r\n", "")
        .replace("=3D", "=")
        .replace("\r\n", "\n")
}

/// A header's value, its folded continuation lines joined (RFC 5322 §2.2.3).
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next()?.replace("\r\n ", " ");
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(|v| v.trim().to_string())
}

fn hooks(received: &Received, name: &str) -> Vec<(u16, serde_json::Value)> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _, _)| n == name || (name == "slack" && n.starts_with("slack-")))
        .map(|(_, s, b)| (*s, b.clone()))
        .collect()
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(PASSWORD), "the SMTP password is in {what}");
    assert!(!text.contains(SLACK_TOKEN), "the Slack token is in {what}");
}

#[test]
fn a_completed_day_is_mailed_and_posted_with_its_fills_and_equity() {
    let dir = tempfile::tempdir().unwrap();
    let Some(smtp) = smtp_server(dir.path()) else {
        return;
    };
    let (http_port, received) = http_receiver();
    let config = write_config(dir.path(), &smtp, http_port, "");
    let out = run_once(dir.path(), &config, http_port, &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // A dead webhook and a flaky one change nothing about trading.
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(r#""status": "completed""#), "{stdout}");

    // The venue's fills, as the simulated account kept them.
    let account: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state/sim.json")).unwrap())
            .unwrap();
    let filled: Vec<String> = account["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "filled")
        .map(|o| {
            let qty: rust_decimal::Decimal = o["filled_qty"].as_str().unwrap().parse().unwrap();
            let price: rust_decimal::Decimal =
                o["avg_fill_price"].as_str().unwrap().parse().unwrap();
            format!(
                "{} {} {} at {}",
                o["side"].as_str().unwrap(),
                qty.normalize(),
                o["symbol"].as_str().unwrap(),
                price.normalize()
            )
        })
        .collect();
    assert!(!filled.is_empty(), "the first run trades");

    // One mail, over STARTTLS with the login, to both recipients.
    let mail = mails(&smtp.inbox);
    assert_eq!(mail.len(), 1, "{mail:?}");
    let (meta, raw) = &mail[0];
    assert_eq!(meta["tls"], true);
    assert_eq!(meta["login"], "alchemiser");
    assert_eq!(
        meta["rcpt_tos"],
        serde_json::json!(["ops@example.test", "trader@example.test"])
    );
    let subject = header(raw, "Subject").unwrap();
    assert!(
        subject.contains("completed")
            && subject.contains(&format!("{} orders", filled.len()))
            && subject.contains("equity $"),
        "{subject}"
    );
    let text = body(raw);
    for line in &filled {
        assert!(text.contains(line), "the mail lacks {line:?}:\n{text}");
    }
    assert!(text.contains("Equity $"), "{text}");

    // Webhooks: the generic body carries the same fills and equity.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooks(&received, "flaky").len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let json = hooks(&received, "json");
    assert_eq!(json.len(), 1, "{json:?}");
    let body_json = &json[0].1;
    assert_eq!(body_json["kind"], "completed");
    assert_eq!(body_json["fills"].as_array().unwrap().len(), filled.len());
    let equity = body_json["equity"].as_str().unwrap();
    let dollars: rust_decimal::Decimal = equity.parse().unwrap();
    let shown = text
        .split("Equity $")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .replace(',', "");
    assert_eq!(
        shown,
        dollars
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            .to_string()
    );
    let slack = hooks(&received, "slack");
    assert_eq!(slack.len(), 1);
    assert!(slack[0].1["text"].as_str().unwrap().starts_with(&subject));
    let discord = hooks(&received, "discord");
    assert_eq!(discord.len(), 1);
    assert!(discord[0].1["content"]
        .as_str()
        .unwrap()
        .contains(&filled[0]));
    // The flaky hook: refused twice (503), accepted on the third attempt, one message.
    let flaky: Vec<u16> = hooks(&received, "flaky").iter().map(|(s, _)| *s).collect();
    assert_eq!(flaky, [503, 503, 200]);
    assert!(
        stderr.contains("notification given up"),
        "the dead hook is reported: {stderr}"
    );
    assert!(stderr.contains("retrying"), "{stderr}");

    // Secrets stay out of what the engine writes.
    assert_no_secret("stdout", &stdout);
    assert_no_secret("stderr", &stderr);
    let journal = std::fs::read(dir.path().join("state/journal.sqlite")).unwrap();
    assert_no_secret("the journal", &String::from_utf8_lossy(&journal));
}

#[test]
fn a_failing_day_is_mailed_with_its_reason_then_the_give_up_and_the_halt() {
    let dir = tempfile::tempdir().unwrap();
    let Some(smtp) = smtp_server(dir.path()) else {
        return;
    };
    let (http_port, received) = http_receiver();
    // No retries: recovery gives up at once and halts trading.
    let config = write_config(
        dir.path(),
        &smtp,
        http_port,
        "[recovery]\nmax_attempts = 0\nhalt_on_give_up = true",
    );
    // Ten sessions into the data: the 200-day average has too little history.
    let out = run_once(dir.path(), &config, http_port, &["--as-of", "2013-01-15"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while mails(&smtp.inbox).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mail = mails(&smtp.inbox);
    let subjects: Vec<String> = mail
        .iter()
        .map(|(_, raw)| header(raw, "Subject").unwrap())
        .collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    let failed = mail
        .iter()
        .find(|(_, raw)| {
            header(raw, "Subject")
                .unwrap()
                .contains("FAILED at strategy")
        })
        .unwrap_or_else(|| panic!("{subjects:?}"));
    let text = body(&failed.1);
    assert!(text.contains("2013-01-15"), "{text}");
    assert!(
        text.contains("history"),
        "the reason is in the mail: {text}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("recovery gave up")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("TRADING HALTED")),
        "{subjects:?}"
    );
    let kinds: Vec<String> = hooks(&received, "json")
        .iter()
        .map(|(_, b)| b["kind"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(sorted, ["failed", "gave_up", "halted"], "{kinds:?}");
    let failed_json = hooks(&received, "json")
        .into_iter()
        .find(|(_, b)| b["kind"] == "failed")
        .unwrap()
        .1;
    assert!(failed_json["reason"].as_str().unwrap().contains("history"));
}
