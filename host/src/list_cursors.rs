//! The list cursors clients hold: where a listing goes on, as the store's own position
//! ([`Cursor`]: the last key listed, on SQLite, PostgreSQL and memory), so that every server on
//! the same store takes a cursor any of them handed out, a restart breaks no listing, and a
//! cursor nobody handed out is refused.
//!
//! - **HTTP cursors** carry the position itself, signed: `TAG.POSITION`, the position in
//!   base64url and the tag 96 bits of HMAC-SHA-256 under the store's cursor key. Nothing is
//!   stored per cursor, and a cursor does not expire.
//! - **`SCAN` cursors** are numbers (Redis clients parse them), too small for a position: a
//!   random number below 2^53 (exact in a JavaScript client's numbers too) naming a note the
//!   store keeps for [`SCAN_CURSOR_LIFETIME`] with the position in it (`scan:N`). A number
//!   that names no live note is refused.
//! - **The cursor key** is a note too (`cursor-key`): 32 random bytes, made by the first server
//!   that signs a cursor on the store and learned by every other from the store
//!   ([`tally_keyvalue::storage::Storage::keep_note`]: the first to keep it wins).
//!
//! A store that keeps no notes (a custom `Storage` without the capability) gets a key of this
//! process and `SCAN` numbers in a table of this process (the newest [`LOCAL_SCAN_CURSORS`]):
//! its cursors work only in the server that made them, until it stops; said once in the log.
//! So is a store this server may only read (a read-only SQLite file) that has no key yet.

use crate::failure::Failure;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tally_keyvalue::numbered::NumberedTable;
use tally_keyvalue::storage::{Cursor, Note, Storage, StorageError};
use tokio::sync::OnceCell;

/// The note that holds the key cursors are signed with.
pub const CURSOR_KEY_NOTE: &str = "cursor-key";

/// How long a `SCAN` cursor stays good: a scan paused longer starts again from 0.
pub const SCAN_CURSOR_LIFETIME: Duration = Duration::from_secs(3600);

/// How many `SCAN` cursors a server keeps when the store keeps no notes.
pub const LOCAL_SCAN_CURSORS: usize = 4096;

/// Hex digits of an HTTP cursor's tag (96 bits).
const TAG_HEX: usize = 24;

/// `SCAN` numbers are below this: integers a JavaScript number holds exactly.
const SCAN_NUMBERS: u64 = 1 << 53;

/// Why a cursor a client sent is not taken.
#[derive(Debug)]
pub enum CursorRefused {
    /// No server of this store handed it out (made up, altered, expired): the words, to be
    /// answered as the client's mistake.
    Unknown(String),
    /// The store could not be asked.
    Failed(Failure),
}

impl From<Failure> for CursorRefused {
    fn from(failure: Failure) -> Self {
        Self::Failed(failure)
    }
}

/// The cursors of one server's listings over one store (HTTP's and `SCAN`'s).
pub struct ListCursors {
    storage: Arc<dyn Storage>,
    store_name: Arc<str>,
    counter_limit: u64,
    /// The cursor key, once read or made.
    key: OnceCell<[u8; 32]>,
    /// `SCAN` positions, when the store keeps no notes.
    local_scans: NumberedTable<Cursor>,
}

impl ListCursors {
    /// The cursors of listings over `storage`, named `store_name` in failures.
    pub fn new(storage: Arc<dyn Storage>, store_name: Arc<str>, counter_limit: u64) -> Self {
        if !storage.capabilities().notes {
            tracing::warn!(
                "the store {store_name} keeps no notes: list cursors are accepted only by this \
                 server, until it stops"
            );
        }
        Self {
            storage,
            store_name,
            counter_limit,
            key: OnceCell::new(),
            local_scans: NumberedTable::new(LOCAL_SCAN_CURSORS, 0),
        }
    }

    /// An HTTP cursor for `position`.
    pub async fn sign(&self, position: &Cursor) -> Result<String, Failure> {
        let key = self.key(true).await?.ok_or_else(|| {
            Failure::Trap(anyhow::anyhow!("no cursor key was made for the store"))
        })?;
        let encoded = URL_SAFE_NO_PAD.encode(position.as_bytes());
        Ok(format!("{}.{encoded}", tag(&key, &encoded)))
    }

    /// The position an HTTP cursor stands for.
    pub async fn open(&self, cursor: &str) -> Result<Cursor, CursorRefused> {
        let unknown = || {
            CursorRefused::Unknown(
                "cursor is not one a server of this store handed out (only a page's Link \
                 carries one); list again from the first page"
                    .into(),
            )
        };
        let (hex, encoded) = cursor.split_once('.').ok_or_else(unknown)?;
        if hex.len() != TAG_HEX {
            return Err(unknown());
        }
        // Without a key, no server of this store has signed a cursor yet.
        let key = self.key(false).await?.ok_or_else(unknown)?;
        if !constant_time_eq(hex.as_bytes(), tag(&key, encoded).as_bytes()) {
            return Err(unknown());
        }
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| unknown())?;
        Ok(Cursor::from_bytes(bytes))
    }

    /// A `SCAN` cursor for `position`: a new number, never 0.
    pub async fn scan_number(&self, position: &Cursor) -> Result<u64, Failure> {
        if !self.storage.capabilities().notes {
            return Ok(self.local_scans.remember(position.clone()) % SCAN_NUMBERS);
        }
        // A number another cursor holds answers that cursor's position: draw again.
        for _ in 0..4 {
            let number = random_u64()? % SCAN_NUMBERS;
            if number == 0 {
                continue;
            }
            let note = Note::new(scan_note(number), position.as_bytes())
                .expiring_after(SCAN_CURSOR_LIFETIME);
            let kept = self
                .storage
                .keep_note(note)
                .await
                .map_err(|failure| self.failed(failure))?;
            if kept == position.as_bytes() {
                return Ok(number);
            }
        }
        Err(Failure::Trap(anyhow::anyhow!(
            "four random SCAN cursor numbers were all taken"
        )))
    }

    /// The position a `SCAN` cursor stands for.
    pub async fn scan_position(&self, number: u64) -> Result<Cursor, CursorRefused> {
        let unknown = || {
            CursorRefused::Unknown(format!(
                "SCAN cursor {number} is not one a server of this store handed out, or is older \
                 than {} minutes; SCAN again from 0",
                SCAN_CURSOR_LIFETIME.as_secs() / 60
            ))
        };
        if !self.storage.capabilities().notes {
            return self.local_scans.recall(number).ok_or_else(unknown);
        }
        if number >= SCAN_NUMBERS {
            return Err(unknown());
        }
        match self.storage.read_note(&scan_note(number)).await {
            Ok(Some(position)) => Ok(Cursor::from_bytes(position)),
            Ok(None) => Err(unknown()),
            Err(failure) => Err(CursorRefused::Failed(self.failed(failure))),
        }
    }

    /// The cursor key: read from the store, or (`make`) made there when it has none. `None`
    /// when it has none and `make` is false.
    async fn key(&self, make: bool) -> Result<Option<[u8; 32]>, Failure> {
        if let Some(key) = self.key.get() {
            return Ok(Some(*key));
        }
        let found = if self.storage.capabilities().notes {
            match self.storage.read_note(CURSOR_KEY_NOTE).await {
                Ok(found) => found,
                Err(failure) => return Err(self.failed(failure)),
            }
        } else {
            None
        };
        let key = match found {
            Some(found) => found,
            None if !make => return Ok(None),
            None => self.make_key().await?,
        };
        let key: [u8; 32] = key.as_slice().try_into().map_err(|_| {
            Failure::Trap(anyhow::anyhow!(
                "the store's note {CURSOR_KEY_NOTE:?} holds {} bytes, not a 32-byte key; \
                 remove it and a new key is made",
                key.len()
            ))
        })?;
        Ok(Some(*self.key.get_or_init(|| async { key }).await))
    }

    /// A new key, kept in the store (where another server may have been first: its key is
    /// the one answered), or, where the store keeps no notes or may not be written, this
    /// process's own.
    async fn make_key(&self) -> Result<Vec<u8>, Failure> {
        let mut key = [0_u8; 32];
        getrandom::fill(&mut key)
            .map_err(|error| Failure::Trap(anyhow::anyhow!("reading random bytes: {error}")))?;
        if !self.storage.capabilities().notes {
            return Ok(key.to_vec());
        }
        match self
            .storage
            .keep_note(Note::new(CURSOR_KEY_NOTE, key))
            .await
        {
            Ok(kept) => Ok(kept),
            Err(StorageError::ReadOnly { .. }) => {
                tracing::warn!(
                    "the store {} may only be read and holds no cursor key: list cursors are \
                     accepted only by this server, until it stops",
                    self.store_name
                );
                Ok(key.to_vec())
            }
            Err(failure) => Err(self.failed(failure)),
        }
    }

    fn failed(&self, failure: StorageError) -> Failure {
        Failure::of_store(failure, &self.store_name, self.counter_limit)
    }
}

/// The note that holds `SCAN` cursor `number`'s position.
fn scan_note(number: u64) -> String {
    format!("scan:{number}")
}

/// The hex tag of an HTTP cursor's encoded position under `key`.
fn tag(key: &[u8; 32], encoded: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(b"tally list cursor\0");
    mac.update(encoded.as_bytes());
    let tag = mac.finalize().into_bytes();
    tag[..TAG_HEX / 2]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn random_u64() -> Result<u64, Failure> {
    let mut bytes = [0_u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|error| Failure::Trap(anyhow::anyhow!("reading random bytes: {error}")))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_keyvalue::storage::MemoryStorage;

    fn cursors(storage: &Arc<MemoryStorage>) -> ListCursors {
        ListCursors::new(storage.clone(), Arc::from("memory"), u64::MAX)
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// A cursor signed by one server opens on another of the same store, and nothing altered,
    /// hand-built or from another store does.
    #[test]
    fn cursors_open_on_every_server_of_the_store() {
        let store = Arc::new(MemoryStorage::new());
        let (one, two) = (cursors(&store), cursors(&store));
        let position = Cursor::from_bytes("c00993");
        let signed = block_on(one.sign(&position)).unwrap();
        assert_eq!(signed.len(), 24 + 1 + 8);
        assert_eq!(block_on(two.open(&signed)).unwrap(), position);
        let other = cursors(&Arc::new(MemoryStorage::new()));
        let foreign = block_on(other.sign(&position)).unwrap();
        let altered = signed.replace(".Yz", ".Yx");
        for refused in [
            foreign.as_str(),
            &altered,
            "abc",
            "",
            ".YzAwOTkz",
            &signed[1..],
        ] {
            assert!(
                matches!(block_on(two.open(refused)), Err(CursorRefused::Unknown(_))),
                "{refused:?}"
            );
        }
    }

    /// `SCAN` numbers name positions every server of the store reads; unknown ones are refused.
    #[test]
    fn scan_numbers_are_shared() {
        let store = Arc::new(MemoryStorage::new());
        let (one, two) = (cursors(&store), cursors(&store));
        let position = Cursor::from_bytes("k0042");
        let number = block_on(one.scan_number(&position)).unwrap();
        assert!((1..SCAN_NUMBERS).contains(&number));
        assert_eq!(block_on(two.scan_position(number)).unwrap(), position);
        for refused in [number ^ 1, SCAN_NUMBERS + number] {
            assert!(matches!(
                block_on(two.scan_position(refused)),
                Err(CursorRefused::Unknown(_))
            ));
        }
    }
}
