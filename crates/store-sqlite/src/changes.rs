//! Whether the database changed: the signal SQLite itself uses, read without taking a lock.
//!
//! In WAL mode every connection, in any process, finds the database's state in the
//! *wal-index header*, the first 96 bytes of the `-shm` file: two copies of a 48-byte header
//! that every commit rewrites (its change counter, the last frame, the salts and a checksum).
//! A writer writes the second copy, then the first; a reader reads the first, then the second,
//! and trusts them only when they agree (<https://www.sqlite.org/walformat.html>, "The
//! WAL-Index Header"). [`WalWatch::version`] does the same with one `pread`, so a cache keyed
//! by it is dropped by the next look-up after any commit, by this process or any other (the
//! CLI revoking a certificate, a second server), with none of the file locks that a SQLite
//! read transaction takes.
//!
//! The watch keeps a connection of its own open for its whole life. That connection keeps
//! SQLite's shared lock on the `-shm` file, so no other process can reinitialise or delete the
//! file under the watch.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

/// One state of the database: the wal-index header as it stood.
pub(crate) type Version = [u8; HEADER];

/// Bytes in one copy of the wal-index header.
const HEADER: usize = 48;
/// Offset of `isInit` in the header: 1 once a connection has initialised the index.
const IS_INIT: usize = 12;

/// Reads the database's current [`Version`].
#[derive(Debug)]
pub(crate) struct WalWatch {
    shm: File,
    /// Holds SQLite's lock on the `-shm` file (see the module documentation); never used
    /// again, the mutex only makes it shareable between threads.
    _anchor: Mutex<Connection>,
}

impl WalWatch {
    /// A watch on the database at `db`, or `None` when it is not a WAL-mode file database (an
    /// in-memory one, say): then nothing may be cached.
    pub(crate) fn open(db: &Path) -> Option<Self> {
        let anchor = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        // A read maps the -shm file into this connection, and keeps it mapped until it closes.
        let mode: String = anchor
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        anchor
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()?;
        let mut shm_path = db.as_os_str().to_owned();
        shm_path.push("-shm");
        let shm = File::open(&shm_path).ok()?;
        let watch = Self {
            shm,
            _anchor: Mutex::new(anchor),
        };
        watch.version().map(|_| watch)
    }

    /// The current version, or `None` while a writer is rewriting the header (the two copies
    /// differ) or when it cannot be read: the caller then reads the database itself.
    pub(crate) fn version(&self) -> Option<Version> {
        let mut both = [0u8; 2 * HEADER];
        self.shm.read_exact_at(&mut both, 0).ok()?;
        let (first, second) = both.split_at(HEADER);
        if first != second || first[IS_INIT] != 1 {
            return None;
        }
        let mut version = [0u8; HEADER];
        version.copy_from_slice(first);
        Some(version)
    }
}
