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

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
