//! Small file helpers: error mapping, replacement through a rename, directory fsync.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::{Result, StorageError};

/// Wraps an I/O error with the path it happened on, so a log line says which file failed.
pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.display().to_string(), source }
}

/// Replaces `path` with `bytes` through a temporary file and a rename, without fsync: a crash
/// of the process leaves the old or the new content; a power loss may leave either or none.
pub(super) fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// Reads a whole small file, or `None` when it does not exist.
pub(super) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Reads a file holding one decimal integer (as earlier versions wrote `log-start`).
pub(super) fn read_i64(path: &Path) -> Result<Option<i64>> {
    let Some(bytes) = read_optional(path)? else { return Ok(None) };
    let text = String::from_utf8_lossy(&bytes);
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| StorageError::Corrupt(format!("{} should hold an integer, found {text:?}", path.display())))
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("value");
        assert_eq!(read_i64(&path).expect("read"), None);
        write_replacing(&path, b"41").expect("write");
        write_replacing(&path, b"42").expect("rewrite");
        assert_eq!(read_i64(&path).expect("read"), Some(42));
        assert!(!dir.path().join("value.tmp").exists());
    }

    #[test]
    fn garbage_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("value");
        std::fs::write(&path, "forty-two").expect("write");
        assert!(matches!(read_i64(&path), Err(StorageError::Corrupt(_))));
    }
}
