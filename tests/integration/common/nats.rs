//! A real nats-server (Debian's package) with JetStream, started by the tests on
//! 127.0.0.1 with its store in a folder of theirs, and killed on drop.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server binary; `None` (the test skips) only where CI's
/// `ALCHEMISER_REQUIRE_NATS` is not set.
pub fn nats_server_binary() -> Option<PathBuf> {
    let found = [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("ALCHEMISER_REQUIRE_NATS").is_none(),
            "nats-server is required (apt-get install -y nats-server) but was not found"
        );
        eprintln!("skipped: no nats-server (apt-get install -y nats-server); CI requires it");
    }
    found
}

/// A nats-server with JetStream on `port`, its store in `store`.
pub struct NatsServer(Child);

impl NatsServer {
    pub fn start(binary: &Path, port: u16, store: &Path) -> Self {
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsServer(child)
    }
}

impl NatsServer {
    /// A nats-server run with the configuration file `config` (which says its port,
    /// `port`) and `env` in its environment (the users' passwords).
    pub fn with_config(binary: &Path, port: u16, config: &Path, env: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(config.with_extension("log")).unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start: {}",
                std::fs::read_to_string(config.with_extension("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsServer(child)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA, the server's certificate for 127.0.0.1 and a client certificate, all signed
/// by it, written into `dir`: (ca, server cert, server key, client cert, client key).
pub fn certificates(dir: &Path) -> [PathBuf; 5] {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alchemiser bus test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let signed = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server, server_key) = signed("127.0.0.1");
    let (client, client_key) = signed("alchemiser-client");
    let files = [
        "ca.pem",
        "server.pem",
        "server-key.pem",
        "client.pem",
        "client-key.pem",
    ]
    .map(|n| dir.join(n));
    for (path, text) in files
        .iter()
        .zip([ca_cert.pem(), server, server_key, client, client_key])
    {
        std::fs::write(path, text).unwrap();
    }
    files
}

pub const ROLE_USERS: [&str; 7] = [
    "engine",
    "strategy",
    "portfolio",
    "execution",
    "reconciliation",
    "recovery",
    "research",
];

pub fn password_of(user: &str) -> String {
    format!("pw-{user}-7f3a")
}

/// The environment of a process on the bus as `user`.
pub fn as_user(user: &str) -> [(String, String); 2] {
    [
        ("ALCHEMISER_NATS_USER".into(), user.into()),
        ("ALCHEMISER_NATS_PASSWORD".into(), password_of(user)),
    ]
}

pub fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The server as `ops/nats/` configures it — its permissions file as it is, TLS with a
/// CA made here that also verifies clients — with each user's password in its
/// environment.
pub fn secured_server(binary: &Path, dir: &Path, port: u16) -> (NatsServer, [PathBuf; 5]) {
    let nats = dir.join("nats");
    std::fs::create_dir_all(&nats).unwrap();
    let certs = certificates(&nats);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/nats/permissions.conf"),
        nats.join("permissions.conf"),
    )
    .unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/nats/nats-server.conf"),
    )
    .unwrap();
    let conf = shipped
        .replace("listen: 0.0.0.0:4222", &format!("listen: 127.0.0.1:{port}"))
        .replace(
            "/var/lib/nats/alchemiser",
            &nats.join("store").display().to_string(),
        )
        .replace(
            "/etc/nats/certs/server.pem",
            &certs[1].display().to_string(),
        )
        .replace(
            "/etc/nats/certs/server-key.pem",
            &certs[2].display().to_string(),
        )
        .replace("/etc/nats/certs/ca.pem", &certs[0].display().to_string());
    assert!(conf.contains("verify: true") && conf.contains("include permissions.conf"));
    let path = nats.join("server.conf");
    std::fs::write(&path, conf).unwrap();
    let env: Vec<(String, String)> = ROLE_USERS
        .iter()
        .map(|u| {
            (
                format!("ALCHEMISER_NATS_{}_PASSWORD", u.to_uppercase()),
                password_of(u),
            )
        })
        .collect();
    (
        NatsServer::with_config(binary, port, &path, &pairs(&env)),
        certs,
    )
}
