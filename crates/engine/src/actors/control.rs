//! Operating a running engine: the kill switch (`alchemiser halt` / `resume`), which
//! reaches a running engine through request files in `engine.control_dir`, and the run
//! file by which a running engine is found.

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::prelude::*;

use super::broker::{Broker, Halt, Resume};
use crate::events::HaltReason;
use crate::journal::lock::{lock_file, Locked};

/// The request files of the kill switch.
#[derive(Clone, Debug)]
pub struct ControlFiles {
    dir: PathBuf,
}

impl ControlFiles {
    const HALT: &'static str = "HALT";
    const RESUME: &'static str = "RESUME";

    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let path = self.dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// `alchemiser halt`: a later `resume` request is dropped (the newest wins).
    pub fn request_halt(&self, reason: &str) -> Result<PathBuf, String> {
        let _ = std::fs::remove_file(self.dir.join(Self::RESUME));
        self.write(Self::HALT, reason)
    }

    pub fn request_resume(&self, detail: &str) -> Result<PathBuf, String> {
        let _ = std::fs::remove_file(self.dir.join(Self::HALT));
        self.write(Self::RESUME, detail)
    }

    /// A request no engine has taken yet: `halt` or `resume`, and its file.
    pub fn pending(&self) -> Option<(&'static str, PathBuf)> {
        [("halt", Self::HALT), ("resume", Self::RESUME)]
            .into_iter()
            .map(|(what, name)| (what, self.dir.join(name)))
            .find(|(_, path)| path.exists())
    }

    /// The request's text, if there is one.
    fn read(path: &Path) -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|t| t.trim().to_string())
    }

    /// Hands pending requests to the broker; true when one was applied. A request file
    /// is removed only once the broker has it: its removal is the engine's
    /// acknowledgement, which `halt` and `resume` wait for.
    pub async fn apply(&self, broker: &Addr<Broker>) -> bool {
        let mut applied = false;
        let halt = self.dir.join(Self::HALT);
        if let Some(reason) = Self::read(&halt) {
            let detail = if reason.is_empty() {
                "alchemiser halt".to_string()
            } else {
                format!("alchemiser halt: {reason}")
            };
            tracing::warn!(%detail, "halt requested");
            let halted = broker
                .send(Halt {
                    reason: HaltReason::Manual,
                    detail,
                })
                .await
                .is_ok();
            if halted {
                let _ = std::fs::remove_file(&halt);
            }
            applied |= halted;
        }
        let resume = self.dir.join(Self::RESUME);
        if let Some(detail) = Self::read(&resume) {
            let detail = if detail.is_empty() {
                "alchemiser resume".to_string()
            } else {
                detail
            };
            tracing::warn!(%detail, "resume requested");
            if let Ok(lifted) = broker.send(Resume { detail }).await {
                let _ = std::fs::remove_file(&resume);
                applied |= lifted;
            }
        }
        applied
    }

    /// Applies requests as they arrive, every `every`, for the engine's life.
    pub fn watch(self, broker: Addr<Broker>, every: Duration) {
        actix_rt::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                self.apply(&broker).await;
            }
        });
    }
}

/// The running engine's mark in its control folder: which process reads the requests
/// there, and of which journal. The engine holds an operating-system lock on it for its
/// whole life (released however the process ends), so `halt` and `resume` can tell a
/// live engine from a file a killed one left behind.
#[derive(Debug)]
pub struct RunFile {
    _file: std::fs::File,
    path: PathBuf,
}

/// What a run file says of its engine.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunningEngine {
    pub pid: u32,
    pub control_dir: String,
    pub journal: String,
}

impl RunFile {
    const NAME: &'static str = "engine.run";

    /// Claims `control_dir` for this process; refused while another engine holds it
    /// (two engines reading one folder's requests would each take the other's halt).
    pub fn claim(control_dir: &Path, journal: &Path) -> Result<RunFile, String> {
        use std::io::Write;
        std::fs::create_dir_all(control_dir)
            .map_err(|e| format!("cannot create {}: {e}", control_dir.display()))?;
        let path = control_dir.join(Self::NAME);
        let io = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        let mut file = match lock_file(&path).map_err(io)? {
            Locked::Mine(file) => file,
            Locked::Held(_) => {
                let holder = Self::running(control_dir)
                    .map_or("another process".to_string(), |e| {
                        format!("engine pid {}", e.pid)
                    });
                return Err(format!(
                    "control folder {} is in use by {holder}; one engine per control folder (engine.control_dir)",
                    control_dir.display()
                ));
            }
        };
        let me = RunningEngine {
            pid: std::process::id(),
            control_dir: std::path::absolute(control_dir)
                .unwrap_or_else(|_| control_dir.to_path_buf())
                .display()
                .to_string(),
            journal: std::path::absolute(journal)
                .unwrap_or_else(|_| journal.to_path_buf())
                .display()
                .to_string(),
        };
        let text = serde_json::to_string(&me).map_err(|e| e.to_string())?;
        file.set_len(0).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        Ok(RunFile { _file: file, path })
    }

    /// The engine running with `control_dir`, if one is: its run file exists and is
    /// locked by a live process.
    pub fn running(control_dir: &Path) -> Option<RunningEngine> {
        let path = control_dir.join(Self::NAME);
        let file = std::fs::File::open(&path).ok()?;
        match file.try_lock_shared() {
            // Nobody holds it: an engine that ended without removing it (kill -9).
            Ok(()) => None,
            Err(std::fs::TryLockError::WouldBlock) => {
                let text = std::fs::read_to_string(&path).ok()?;
                serde_json::from_str(&text).ok()
            }
            Err(std::fs::TryLockError::Error(_)) => None,
        }
    }
}

impl Drop for RunFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_control_folder_names_its_engine_until_released() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunFile::running(dir.path()), None);
        let journal = dir.path().join("journal.sqlite");
        let claim = RunFile::claim(dir.path(), &journal).unwrap();
        let running = RunFile::running(dir.path()).expect("a running engine");
        assert_eq!(running.pid, std::process::id());
        assert!(running.journal.ends_with("journal.sqlite"), "{running:?}");
        let err = RunFile::claim(dir.path(), &journal).unwrap_err();
        assert!(err.contains("in use by engine pid"), "{err}");
        drop(claim);
        assert_eq!(RunFile::running(dir.path()), None);
        assert!(!dir.path().join("engine.run").exists());
    }

    #[test]
    fn a_run_file_left_by_a_killed_engine_is_not_a_running_engine() {
        let dir = tempfile::tempdir().unwrap();
        let stale = RunningEngine {
            pid: 1,
            control_dir: dir.path().display().to_string(),
            journal: "journal.sqlite".into(),
        };
        std::fs::write(
            dir.path().join("engine.run"),
            serde_json::to_string(&stale).unwrap(),
        )
        .unwrap();
        assert_eq!(RunFile::running(dir.path()), None);
    }
}
