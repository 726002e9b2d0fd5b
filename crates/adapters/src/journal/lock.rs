//! One engine per journal: a writer holds an exclusive lock on `journal.sqlite.lock`
//! beside the journal's real file (links and `..` resolved, so that two paths to one
//! journal meet at one lock)
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
        let canonical = canonical_journal(journal).map_err(io)?;
        let mut name = canonical.into_os_string();
        name.push(".lock");
        let path = PathBuf::from(name);
        let mut file = match lock_file(&path).map_err(io)? {
            Locked::Mine(file) => file,
            Locked::Held(mut file) => {
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
        };
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

/// A lock file, taken or held by another process (which it names, if it wrote itself in).
pub enum Locked {
    Mine(File),
    Held(File),
}

/// Opens `path` (made if missing, its content kept) and tries its exclusive lock: the
/// operating system's, released when the process ends however it ends.
pub fn lock_file(path: &Path) -> std::io::Result<Locked> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Locked::Mine(file)),
        Err(TryLockError::WouldBlock) => Ok(Locked::Held(file)),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// The journal's file with every link and `..` resolved; for a journal not made yet,
/// its folder's real path (made if missing) and its name.
fn canonical_journal(journal: &Path) -> std::io::Result<PathBuf> {
    if let Ok(real) = std::fs::canonicalize(journal) {
        return Ok(real);
    }
    let dir = journal
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = journal
        .file_name()
        .ok_or_else(|| std::io::Error::other("the journal path names no file"))?;
    Ok(std::fs::canonicalize(dir)?.join(name))
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

    #[test]
    fn a_link_to_a_held_journal_meets_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.sqlite");
        std::fs::write(&journal, b"").unwrap();
        let other = dir.path().join("elsewhere");
        std::fs::create_dir(&other).unwrap();
        let link = other.join("j.sqlite");
        std::os::unix::fs::symlink(&journal, &link).unwrap();
        let _first = JournalLock::acquire(&journal).unwrap();
        let err = JournalLock::acquire(&link).unwrap_err().to_string();
        assert!(err.contains("is in use by another engine"), "{err}");
        let dotted = other.join("..").join("journal.sqlite");
        assert!(JournalLock::acquire(&dotted).is_err());
    }
}
