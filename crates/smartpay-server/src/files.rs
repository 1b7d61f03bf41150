//! File permissions of the data directory: it holds consumer data and key material, so the
//! directory is `0700` and every file in it `0600` (SQLite gives its `-wal` and `-shm` files the
//! database file's mode, so creating the database `0600` covers them).

use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` if needed and makes it `0700`.
pub fn make_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Creates `path` empty with mode `0600` if it does not exist yet.
pub fn precreate_private(path: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes every regular file directly in `dir` `0600` (files written by older versions).
pub fn make_private_files(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_directory_and_its_files_are_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        make_private_dir(&dir).unwrap();
        std::fs::write(dir.join("old.db"), b"x").unwrap();
        std::fs::set_permissions(dir.join("old.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        precreate_private(&dir.join("new.db")).unwrap();
        make_private_files(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("old.db")), 0o600);
        assert_eq!(mode(&dir.join("new.db")), 0o600);
    }
}
