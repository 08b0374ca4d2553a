//! Durable, atomic file writes.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Whether an existing file at the destination may be replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Replace it atomically.
    Replace,
    /// Fail with `io::ErrorKind::AlreadyExists`, leaving it untouched.
    Refuse,
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the whole new one:
/// a temporary file in the same directory, created with `mode`, written, fsynced, renamed (or
/// linked, with [`Existing::Refuse`]) over `path`, then the directory fsynced.
///
/// The temporary file has `mode` from its creation, so a secret is never readable by others,
/// even for a moment; it is removed if anything fails.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
) -> io::Result<()> {
    let dir = parent_dir(path);
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file_name.to_string_lossy()))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    // The umask may have narrowed the mode at creation; set exactly what was asked.
    temp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    match existing {
        Existing::Replace => temp.persist(path).map_err(|e| e.error)?,
        Existing::Refuse => temp.persist_noclobber(path).map_err(|e| e.error)?,
    };
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates `dir` and its missing parents; the directories it creates get `mode`. An existing
/// directory is left as it is.
pub(crate) fn create_dir(dir: &Path, mode: u32) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
}
