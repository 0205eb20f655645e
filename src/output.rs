//! Writing to the terminal without panicking.
//!
//! `println!` and `eprintln!` panic when their stream is closed or full, as
//! in `irqlab | head -1` or `irqlab > /dev/full`. Reports go through
//! [`stdout`], which returns the error for the caller to report before it
//! exits with status 1. Messages go through [`stderr_line`], which drops a
//! line that standard error cannot take: there is nowhere left to report
//! that failure.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A failed write to standard output.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write <standard output>: {}", self.0)
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Writes `text` to standard output and flushes it.
///
/// # Errors
///
/// [`StdoutError`] when standard output is closed (a pipe whose reader
/// exited), full, or otherwise fails.
pub fn stdout(text: &str) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Writes one line to standard error, or nothing if it cannot take it.
pub fn stderr_line(line: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// A file written whole or not at all. The bytes go to a hidden file
/// beside it, which replaces it on [`PendingFile::commit`], so a run that
/// fails, or is refused, leaves an existing file as it was.
///
/// Creating one before a long run checks that the folder takes the file,
/// without touching what the file holds.
#[derive(Debug)]
pub struct PendingFile {
    path: PathBuf,
    partial: PathBuf,
    file: File,
    committed: bool,
}

impl PendingFile {
    /// Creates the hidden file beside `path`.
    ///
    /// # Errors
    ///
    /// The I/O error of creating it, `NotFound` when its folder does not
    /// exist, or `InvalidInput` when `path` names a folder or no file.
    pub fn create(path: &Path) -> io::Result<Self> {
        let invalid = |reason: &str| io::Error::new(io::ErrorKind::InvalidInput, reason);
        if path.is_dir() {
            return Err(invalid("it is a folder; give a file name"));
        }
        let name = path
            .file_name()
            .ok_or_else(|| invalid("it names no file; give a file name"))?;
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
            && !folder.is_dir()
        {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("its folder {} does not exist", folder.display()),
            ));
        }
        let partial = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
        let file = File::create(&partial)?;
        Ok(Self {
            path: path.to_path_buf(),
            partial,
            file,
            committed: false,
        })
    }

    /// Returns the hidden file, to write the content to.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Puts the written content in place of the file.
    ///
    /// # Errors
    ///
    /// The I/O error of flushing or renaming; the file then stays as it
    /// was.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.flush()?;
        std::fs::rename(&self.partial, &self.path)?;
        self.committed = true;
        Ok(())
    }

    /// Writes `bytes` and commits them.
    ///
    /// # Errors
    ///
    /// As [`PendingFile::commit`], or the error of the write.
    pub fn write_all_and_commit(mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.commit()
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PendingFile;

    fn folder(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("irqlab-pending-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn pending_file_dropped_keeps_old_content() {
        let dir = folder("dropped");
        let path = dir.join("result.json");
        std::fs::write(&path, "old").unwrap();

        let pending = PendingFile::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        drop(pending);

        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["result.json"], "the hidden file stayed");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pending_file_commit_replaces_content() {
        let dir = folder("committed");
        let path = dir.join("result.json");
        std::fs::write(&path, "old").unwrap();

        PendingFile::create(&path)
            .unwrap()
            .write_all_and_commit(b"new")
            .unwrap();

        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pending_file_refuses_bad_folders() {
        let dir = folder("refused");
        let error = PendingFile::create(&dir).unwrap_err();
        assert_eq!(error.to_string(), "it is a folder; give a file name");
        let missing = dir.join("missing");
        let error = PendingFile::create(&missing.join("r.json")).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("its folder {} does not exist", missing.display())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
