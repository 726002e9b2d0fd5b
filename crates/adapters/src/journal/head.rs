//! The journal's head — its last sequence number and chain hash — kept in a small file
//! beside it (`journal.sqlite.head`), rewritten after every commit. A journal that lost
//! its last rows (deleted, or an older copy of the file put back) still chains and
//! verifies up to its new end: only something the tail cannot take along shows the
//! loss. The file lags the journal by at most one commit after a crash (it is written
//! after the commit), which is not a loss; a head ahead of the journal, or naming
//! another chain hash for its sequence number, is.

use std::path::{Path, PathBuf};

/// The sequence number and chain hash of the last committed entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub chain: [u8; 32],
}

/// Where a journal's head is kept.
#[derive(Clone, Debug)]
pub struct HeadFile {
    path: PathBuf,
    /// fsync every write (`journal.sync = "full"`).
    sync: bool,
}

const MAGIC: &str = "alchemiser journal head v1";

impl HeadFile {
    pub fn beside(journal: &Path, sync: bool) -> Self {
        let mut name = journal.as_os_str().to_owned();
        name.push(".head");
        Self {
            path: PathBuf::from(name),
            sync,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded head; `None` when there is no file yet (a new journal, or one
    /// written before heads were kept).
    pub fn read(&self) -> Result<Option<Head>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        let bad = || format!("{}: not a journal head file", self.path.display());
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad());
        }
        let seq = lines
            .next()
            .and_then(|l| l.strip_prefix("seq "))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let chain = lines
            .next()
            .and_then(|l| l.strip_prefix("chain "))
            .and_then(|h| blake3::Hash::from_hex(h).ok())
            .ok_or_else(bad)?;
        Ok(Some(Head {
            seq,
            chain: *chain.as_bytes(),
        }))
    }

    /// Replaces the file (write aside, then rename: a crash leaves the old or the new).
    pub fn write(&self, head: Head) -> std::io::Result<()> {
        use std::io::Write;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp)?;
            write!(
                f,
                "{MAGIC}\nseq {}\nchain {}\n",
                head.seq,
                blake3::Hash::from(head.chain).to_hex()
            )?;
            if self.sync {
                f.sync_all()?;
            }
        }
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_reads_back_as_written_and_a_stranger_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = HeadFile::beside(&dir.path().join("j.sqlite"), false);
        assert_eq!(file.path(), dir.path().join("j.sqlite.head"));
        assert_eq!(file.read().unwrap(), None);
        let head = Head {
            seq: 42,
            chain: [7; 32],
        };
        file.write(head).unwrap();
        assert_eq!(file.read().unwrap(), Some(head));
        std::fs::write(file.path(), "seq 1\n").unwrap();
        assert!(file.read().unwrap_err().contains("not a journal head file"));
    }
}
