//! One engine per journal: a writer holds an exclusive lock on `journal.sqlite.lock`
//! for as long as it runs. Two engines appending to one journal would race for its
//! sequence numbers, and the loser could no longer journal (nor its halt). The lock is
//! the operating system's (released when the process ends, however it ends); the file
//! only says who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LockError {
    #[error("journal {journal} is in use by another engine ({holder}); one engine per journal: stop it first")]
    Held { journal: String, holder: String },
    #[error("cannot lock journal {journal}: {message}")]
    Io { journal: String, message: String },
}

/// Held while the process writes the journal; dropping it releases the lock.
#[derive(Debug)]
pub struct JournalLock {
    _file: File,
    path: PathBuf,
}

impl JournalLock {
    /// Takes the lock of the journal at `journal`, or says who holds it.
    pub fn acquire(journal: &Path) -> Result<Self, LockError> {
        let shown = journal.display().to_string();
        let io = |e: std::io::Error| LockError::Io {
            journal: shown.clone(),
            message: e.to_string(),
        };
        let mut name = journal.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    journal: shown.clone(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(
            file,
            "pid {} since {}",
            std::process::id(),
            crate::clock::Clock::now(&crate::clock::SystemClock).format("%Y-%m-%dT%H:%M:%SZ")
        )
        .map_err(io)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.sqlite");
        let first = JournalLock::acquire(&journal).unwrap();
        let err = JournalLock::acquire(&journal).unwrap_err().to_string();
        assert!(
            err.contains("journal.sqlite is in use by another engine"),
            "{err}"
        );
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert!(JournalLock::acquire(&journal).is_ok());
    }
}
