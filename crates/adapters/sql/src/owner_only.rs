//! SQLite files hold every user's rules and alerts: they are readable and writable by their
//! owner only (0600), whatever the umask. SQLite gives its `-wal` and `-shm` files the mode of
//! the database file, so setting it on the database before SQLite opens it covers all three.

use std::path::Path;

/// Creates the database file of a `sqlite:` URL with mode 0600 when it does not exist, and
/// narrows the mode of an existing one (and of its `-wal` and `-shm` files) to 0600.
pub(crate) fn restrict_sqlite_files(url: &str) -> std::io::Result<()> {
    use std::str::FromStr;
    let Ok(options) = sqlx::sqlite::SqliteConnectOptions::from_str(url) else {
        // sqlx reports the malformed URL itself when it connects.
        return Ok(());
    };
    let path = options.get_filename();
    // sqlx names an in-memory database `file:sqlx-in-memory-N`; it is no file to create.
    if path.as_os_str().is_empty() || url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(());
    }
    restrict(path)
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = Path::new(&file);
        let Ok(metadata) = std::fs::metadata(file) else {
            continue;
        };
        if metadata.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
            tracing::info!(file = %file.display(), "database file made readable by its owner only");
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_database_files_become_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        restrict_sqlite_files(&format!("sqlite://{}?mode=rwc", fresh.display())).unwrap();
        assert_eq!(mode(&fresh), 0o600);

        let old = dir.path().join("old.db");
        for file in [old.clone(), dir.path().join("old.db-wal")] {
            std::fs::write(&file, b"").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        restrict_sqlite_files(&format!("sqlite://{}", old.display())).unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(mode(&dir.path().join("old.db-wal")), 0o600);
    }
}
