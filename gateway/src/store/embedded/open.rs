//! Opening a data folder: one owner per folder (a lock file with the
//! holder's pid), the redb file opened with clear errors for a damaged or
//! foreign file, the format version checked, and leases of the previous
//! owner released (it is gone: the lock says so).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, ReadableDatabase, StorageError};

use super::tables::{META, W};
use crate::store::now_ms;

/// The data file inside the folder.
pub const DATA_FILE: &str = "hookgate.redb";
/// The owner lock inside the folder; holds the owner's pid.
pub const LOCK_FILE: &str = "hookgate.lock";
/// The layout this version writes and reads (`meta` key `format`). Format
/// 1 files (events with their state inside) are upgraded when opened.
pub const FORMAT: u32 = 2;
/// redb's page cache. Pages are read on demand (no mmap), so this bounds
/// the store's share of the process memory.
pub const CACHE_BYTES: usize = 32 << 20;

/// Why a data folder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data folder {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error(
        "data folder {path} is in use by another hookgate process{}; only one process may use a data folder \
         (stop it, or point [store] path at another folder)",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { path: PathBuf, pid: Option<u32> },
    #[error("data file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "data file {path} is damaged ({detail}); restore the folder from a backup, or move the file away to start \
         with an empty store"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "data file {path} has store format {found}, which this version of hookgate cannot read (it reads formats 1 \
         to {FORMAT}); use the hookgate version that wrote it"
    )]
    Format { path: PathBuf, found: String },
    #[error("data file {path}: {source}")]
    Database { path: PathBuf, source: redb::Error },
}

/// The owner lock: created if missing, locked without waiting, then
/// stamped with this process's pid.
pub fn lock_folder(folder: &Path) -> Result<File, OpenError> {
    std::fs::create_dir_all(folder).map_err(|source| OpenError::Folder {
        path: folder.to_owned(),
        source,
    })?;
    let path = folder.join(LOCK_FILE);
    let io = |source| OpenError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(OpenError::Locked {
                path: folder.to_owned(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

thread_local! {
    /// Set while this thread reads a file that may be damaged.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into an error message. redb checks what it
/// reads, but some damage still trips an assertion inside it; such a panic
/// is caught here and reported as a damaged file, and the panic hook stays
/// silent about it (only on this thread, only while `f` runs).
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into())
    })
}

fn damaged(path: &Path, detail: impl std::fmt::Display) -> OpenError {
    OpenError::Damaged {
        path: path.to_owned(),
        detail: detail.to_string(),
    }
}

fn from_storage(path: &Path, e: StorageError) -> OpenError {
    match e {
        StorageError::Corrupted(detail) => damaged(path, detail),
        StorageError::Io(source) if source.kind() == std::io::ErrorKind::InvalidData => damaged(path, source),
        StorageError::Io(source) => OpenError::Io {
            path: path.to_owned(),
            source,
        },
        other => OpenError::Database {
            path: path.to_owned(),
            source: other.into(),
        },
    }
}

/// Opens (or creates) the redb file of `folder`, repairing it after an
/// unclean shutdown. A file redb cannot read is reported as damaged, never
/// a panic.
pub fn open_database(folder: &Path) -> Result<Database, OpenError> {
    let path = folder.join(DATA_FILE);
    let opened = quietly(|| {
        let told = std::sync::atomic::AtomicBool::new(false);
        Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_repair_callback(move |_| {
                if !told.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::info!("repairing the data file after an unclean shutdown");
                }
            })
            .create(&path)
    });
    match opened {
        Ok(Ok(db)) => check(&path, db),
        Ok(Err(DatabaseError::Storage(e))) => Err(from_storage(&path, e)),
        Ok(Err(DatabaseError::RepairAborted)) => Err(damaged(&path, "repair failed")),
        Ok(Err(DatabaseError::UpgradeRequired(v))) => Err(OpenError::Format {
            path,
            found: format!("redb file format {v}"),
        }),
        Ok(Err(other)) => Err(OpenError::Database {
            path,
            source: other.into(),
        }),
        Err(panic) => Err(damaged(&path, format!("the storage engine could not read it: {panic}"))),
    }
}

/// Verifies every page's checksum, so a file damaged while the gateway
/// was stopped is reported at start, not on some later read.
fn check(path: &Path, mut db: Database) -> Result<Database, OpenError> {
    let started = std::time::Instant::now();
    let checked = quietly(|| db.check_integrity());
    match checked {
        Ok(Ok(true)) => {
            tracing::debug!(took = ?started.elapsed(), "data file checked");
            Ok(db)
        }
        Ok(Ok(false)) => {
            tracing::warn!(path = %path.display(), "the data file had damage that could be repaired");
            Ok(db)
        }
        Ok(Err(DatabaseError::Storage(e))) => Err(from_storage(path, e)),
        Ok(Err(other)) => Err(OpenError::Database {
            path: path.to_owned(),
            source: other.into(),
        }),
        Err(panic) => Err(damaged(path, format!("the storage engine could not check it: {panic}"))),
    }
}

/// Checks (or, on a new file, writes) the format version, creates every
/// table, and releases leases left by the previous owner of the folder.
pub fn prepare(folder: &Path, db: &Database) -> Result<(), OpenError> {
    let path = folder.join(DATA_FILE);
    let fail = |e: redb::Error| match e {
        redb::Error::Corrupted(d) => damaged(&path, d),
        other => OpenError::Database {
            path: path.clone(),
            source: other,
        },
    };
    let found = {
        let read = db.begin_read().map_err(|e| fail(e.into()))?;
        match read.open_table(META) {
            Ok(meta) => match meta.get("format").map_err(|e| fail(e.into()))? {
                Some(v) => match <[u8; 4]>::try_from(v.value()).map(u32::from_le_bytes) {
                    Ok(n @ 1..=FORMAT) => Some(n),
                    other => {
                        return Err(OpenError::Format {
                            path,
                            found: other.map_or_else(|_| "unknown".into(), |n| n.to_string()),
                        });
                    }
                },
                None => None,
            },
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(fail(e.into())),
        }
    };
    let tx = db.begin_write().map_err(|e| fail(e.into()))?;
    {
        let mut w = W::open(&tx).map_err(|e| damaged(&path, e))?;
        if found == Some(1) {
            let events = super::upgrade::from_format_1(&mut w).map_err(|e| damaged(&path, e))?;
            tracing::info!(events, "data file upgraded from store format 1 to {FORMAT}");
        }
        w.meta
            .insert("format", FORMAT.to_le_bytes().as_slice())
            .map_err(|e| fail(e.into()))?;
        let released = super::claim::release_all_leases(&mut w, now_ms()).map_err(|e| damaged(&path, e))?;
        if released > 0 {
            tracing::info!(released, "deliveries held by the previous run are due again");
        }
    }
    super::upgrade::drop_old_tables(&tx).map_err(|e| fail(e.into()))?;
    tx.commit().map_err(|e| fail(e.into()))?;
    Ok(())
}

/// The folder as a stable key (for the in-process registry).
pub fn canonical(folder: &Path) -> PathBuf {
    std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redb::ReadableDatabase;

    use super::*;
    use crate::store::embedded::EmbeddedStore;

    #[test]
    fn a_newer_format_is_refused_and_the_file_left_alone() {
        let dir = hookgate_testkit::TempDir::new("format");
        let folder = dir.path().join("data");
        std::fs::create_dir_all(&folder).unwrap();
        {
            let db = open_database(&folder).unwrap();
            prepare(&folder, &db).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("format", 99u32.to_le_bytes().as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let err = EmbeddedStore::open(&folder, Duration::from_secs(60)).unwrap_err();
        assert!(
            matches!(&err, OpenError::Format { found, .. } if found == "99"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&folder.join(DATA_FILE).display().to_string()) && msg.contains("store format 99"),
            "{msg}"
        );
        let db = open_database(&folder).unwrap();
        let read = db.begin_read().unwrap();
        let meta = read.open_table(META).unwrap();
        assert_eq!(
            meta.get("format").unwrap().unwrap().value(),
            99u32.to_le_bytes(),
            "not rewritten"
        );
    }

    #[test]
    fn the_lock_names_the_holder_and_is_released_with_the_store() {
        let dir = hookgate_testkit::TempDir::new("lock");
        let folder = dir.path().join("data");
        let held = lock_folder(&folder).unwrap();
        // flock conflicts between two open files even within one process.
        match lock_folder(&folder) {
            Err(OpenError::Locked { path, pid }) => {
                assert_eq!(path, folder);
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        drop(held);
        lock_folder(&folder).unwrap();
    }
}
