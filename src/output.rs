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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A failed write to standard output.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write <standard output>: {}", self.0)
    }
}

impl std::error::Error for StdoutError {
    /// Returns the operating system error's own source: the message
    /// already contains that error, and a printed chain would repeat it.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
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
/// fails, or is rejected, leaves an existing file as it was.
///
/// Creating one before a long run checks that the folder takes the file,
/// without touching what the file holds. A symbolic link is followed, so
/// that the file it names is replaced and the link stays. A path that is
/// no regular file, such as a pipe or `/dev/null`, is appended to directly.
#[derive(Debug)]
pub struct PendingFile {
    file: File,
    /// The rename that commits the content, `(hidden file, target)`, until
    /// it is done. `None` for a pipe or a device, written directly.
    rename: Option<(PathBuf, PathBuf)>,
}

/// The hidden files not yet committed or removed, for
/// [`remove_partial_files`].
static PARTIAL_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Numbers the hidden files of this process, so that two outputs, or two
/// runs, writing the same file never share one.
static NEXT_PARTIAL: AtomicU64 = AtomicU64::new(0);

fn partial_files() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PARTIAL_FILES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes the hidden files of every [`PendingFile`] still open: for a
/// process about to exit without running destructors, on Ctrl-C.
pub fn remove_partial_files() {
    for partial in partial_files().drain(..) {
        let _ = std::fs::remove_file(partial);
    }
}

impl PendingFile {
    /// Creates the hidden file beside `path`, or opens `path` itself when
    /// it is a pipe or a device.
    ///
    /// # Errors
    ///
    /// The I/O error of creating or opening it, `NotFound` when its folder
    /// does not exist, or `InvalidInput` when `path` names a folder or no
    /// file, or its folder is a file.
    pub fn create(path: &Path) -> io::Result<Self> {
        let invalid = |reason: String| io::Error::new(io::ErrorKind::InvalidInput, reason);
        if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            return Err(invalid(
                "a path ending in / names a folder; give a file name".to_owned(),
            ));
        }
        let (target, through_system) = resolve_links(path)?;

        // `metadata` follows symbolic links.
        let metadata = std::fs::metadata(path);
        if metadata.as_ref().is_ok_and(std::fs::Metadata::is_dir) {
            return Err(invalid("it is a folder; give a file name".to_owned()));
        }
        // A pipe or a device, or a file reached through /dev or /proc, such
        // as the file that /dev/stdout stands for, is written directly and
        // appended to: replacing it would unlink what the shell opened.
        if through_system || metadata.is_ok_and(|metadata| !metadata.is_file()) {
            let file = std::fs::OpenOptions::new().append(true).open(path)?;
            return Ok(Self { file, rename: None });
        }

        // A regular file, or none yet: the hidden file goes beside the
        // target of the links.
        let name = target
            .file_name()
            .ok_or_else(|| invalid("it names no file; give a file name".to_owned()))?;
        if let Some(folder) = target
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            if folder.is_file() {
                return Err(invalid(format!(
                    "{} is a file, not a folder",
                    folder.display()
                )));
            }
            if !folder.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("its folder {} does not exist", folder.display()),
                ));
            }
        }

        let partial = target.with_file_name(format!(
            ".{}.{}-{}.partial",
            name.to_string_lossy(),
            std::process::id(),
            NEXT_PARTIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&partial)?;
        partial_files().push(partial.clone());
        // The replacement keeps the permissions of the file it replaces.
        if let Ok(metadata) = std::fs::metadata(&target) {
            let _ = file.set_permissions(metadata.permissions());
        }
        Ok(Self {
            file,
            rename: Some((partial, target)),
        })
    }

    /// Returns the file to write the content to.
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
        if let Some((partial, target)) = &self.rename {
            std::fs::rename(partial, target)?;
            forget_partial(partial);
            self.rename = None;
        }
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
        // A rename still to do means no commit: the hidden file goes.
        if let Some((partial, _)) = &self.rename {
            let _ = std::fs::remove_file(partial);
            forget_partial(partial);
        }
    }
}

/// Returns true when `a` and `b` name one file, once their links are
/// followed and their folders resolved, whether the file exists or not.
/// Two hard links to one regular file are one file too.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b))
        && a.is_file()
        && b.is_file()
    {
        use std::os::unix::fs::MetadataExt;
        return (a.dev(), a.ino()) == (b.dev(), b.ino());
    }
    let resolve = |path: &Path| -> Option<PathBuf> {
        let (target, _) = resolve_links(path).ok()?;
        let folder = match target.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Some(
            std::fs::canonicalize(folder)
                .ok()?
                .join(target.file_name()?),
        )
    };
    match (resolve(a), resolve(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// Takes `partial` off the list of hidden files to remove on Ctrl-C.
fn forget_partial(partial: &Path) {
    partial_files().retain(|listed| listed != partial);
}

/// Returns the file that `path` names once its symbolic links are
/// followed, even to a file that does not exist yet, and whether the way
/// there passes through /dev or /proc (`/dev/stdout`, `/dev/fd/N`). Gives
/// up after 40 links, as Linux does.
fn resolve_links(path: &Path) -> io::Result<(PathBuf, bool)> {
    let system = |path: &Path| path.starts_with("/dev") || path.starts_with("/proc");
    let mut path = path.to_path_buf();
    let mut through_system = system(&path);
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let link = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(folder) => folder.join(link),
                    None => link,
                };
                through_system |= system(&path);
            }
            _ => return Ok((path, through_system)),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "too many levels of symbolic links",
    ))
}

#[cfg(test)]
mod tests {
    use super::{PendingFile, same_file};

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
    fn pending_file_rejects_bad_folders() {
        let dir = folder("rejected");
        let error = PendingFile::create(&dir).unwrap_err();
        assert_eq!(error.to_string(), "it is a folder; give a file name");
        let missing = dir.join("missing");
        let error = PendingFile::create(&missing.join("r.json")).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("its folder {} does not exist", missing.display())
        );
        let file = dir.join("run.sh");
        std::fs::write(&file, "").unwrap();
        let error = PendingFile::create(&file.join("r.json")).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} is a file, not a folder", file.display())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pending_file_follows_links_and_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;

        let dir = folder("linked");
        let target = dir.join("target.json");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.join("link.json");
        std::os::unix::fs::symlink("target.json", &link).unwrap();

        PendingFile::create(&link)
            .unwrap()
            .write_all_and_commit(b"new")
            .unwrap();

        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn same_file_sees_links_and_unresolved_names() {
        let dir = folder("same");
        let file = dir.join("trace.txt");
        std::fs::write(&file, "recorded").unwrap();
        let hard = dir.join("hard.txt");
        std::fs::hard_link(&file, &hard).unwrap();
        let soft = dir.join("soft.txt");
        std::os::unix::fs::symlink("trace.txt", &soft).unwrap();
        let roundabout = dir
            .join("..")
            .join(dir.file_name().unwrap())
            .join("trace.txt");

        assert!(same_file(&file, &hard));
        assert!(same_file(&file, &soft));
        assert!(same_file(&file, &roundabout));
        assert!(same_file(&dir.join("new.json"), &dir.join("./new.json")));
        std::fs::write(dir.join("other.txt"), "recorded").unwrap();
        assert!(!same_file(&file, &dir.join("other.txt")));
        assert!(!same_file(&file, &dir.join("new.json")));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pending_files_never_share_a_hidden_file() {
        let dir = folder("shared");
        let path = dir.join("same.json");
        let first = PendingFile::create(&path).unwrap();
        let second = PendingFile::create(&path).unwrap();

        second.write_all_and_commit(b"second").unwrap();
        first.write_all_and_commit(b"first").unwrap();

        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let error = PendingFile::create(&dir.join("sub/")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a path ending in / names a folder; give a file name"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pending_file_writes_devices_directly() {
        PendingFile::create(std::path::Path::new("/dev/null"))
            .unwrap()
            .write_all_and_commit(b"gone")
            .unwrap();
        let metadata = std::fs::metadata("/dev/null").unwrap();
        assert!(!metadata.is_file(), "/dev/null was replaced");
    }
}
