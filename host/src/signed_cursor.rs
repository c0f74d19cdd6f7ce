//! List cursors a server hands out, signed with a secret of its own process, so it takes back
//! only cursors it made: a forged, altered or hand-built one, or one from another process or
//! before a restart, is refused instead of starting a listing anywhere the client likes.
//!
//! The component's cursor (`N:KEY`, see `tally_guest::page`) says where a listing resumes, and
//! resuming is exact only for cursors the component made at a page boundary. The signature is an
//! HMAC-SHA-256 tag under a random 256-bit key made when the listener starts: HTTP cursors carry
//! 96 bits of it before the component's cursor (`TAG.CURSOR`); RESP `SCAN` cursors, which Redis
//! clients read as unsigned 64-bit integers, are a 32-bit number into the listener's table of
//! cursors and a 32-bit tag of it.

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Signs and checks one listener's cursors.
pub struct CursorSigner {
    key: [u8; 32],
}

/// Hex digits of an HTTP cursor's tag (96 bits).
const TEXT_TAG_HEX: usize = 24;

impl CursorSigner {
    /// A signer with a fresh random key.
    pub fn random() -> anyhow::Result<Self> {
        let mut key = [0_u8; 32];
        getrandom::fill(&mut key)
            .map_err(|error| anyhow::anyhow!("{error}"))
            .context("reading random bytes for the cursor key")?;
        Ok(Self { key })
    }

    /// The tag of `message` in `domain` (so a tag for one kind of cursor fits no other).
    fn tag(&self, domain: &[u8], message: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(domain);
        mac.update(&[0]);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// An HTTP cursor: `TAG.CURSOR`.
    pub fn sign_text(&self, cursor: &str) -> String {
        let tag = self.tag(b"http", cursor.as_bytes());
        let hex: String = tag[..TEXT_TAG_HEX / 2]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("{hex}.{cursor}")
    }

    /// The component's cursor inside an HTTP cursor this signer made; `None` for anything else.
    pub fn open_text<'a>(&self, signed: &'a str) -> Option<&'a str> {
        let (hex, cursor) = signed.split_once('.')?;
        (hex.len() == TEXT_TAG_HEX && self.sign_text(cursor) == signed).then_some(cursor)
    }

    /// A `SCAN` cursor for the table's `number` (only its low 32 bits are kept: a table keeps
    /// far fewer cursors than that).
    pub fn sign_number(&self, number: u64) -> u64 {
        let number = number & u64::from(u32::MAX);
        let tag = self.tag(b"resp", &number.to_be_bytes());
        (number << 32) | u64::from(u32::from_be_bytes([tag[0], tag[1], tag[2], tag[3]]))
    }

    /// The table number inside a `SCAN` cursor this signer made; `None` for anything else.
    pub fn open_number(&self, cursor: u64) -> Option<u64> {
        let number = cursor >> 32;
        (self.sign_number(number) == cursor).then_some(number)
    }
}

#[cfg(test)]
mod tests {
    use super::CursorSigner;

    /// A signer takes back what it signed, and nothing altered, hand-built or signed by another
    /// (another process's key).
    #[test]
    fn only_its_own_cursors_open() {
        let signer = CursorSigner::random().unwrap();
        let other = CursorSigner::random().unwrap();
        let signed = signer.sign_text("3:c00010");
        assert_eq!(signed.len(), 24 + 1 + 8);
        assert_eq!(signer.open_text(&signed), Some("3:c00010"));
        assert_eq!(other.open_text(&signed), None);
        assert_eq!(signer.open_text(&signed.replace("c00010", "c00011")), None);
        assert_eq!(signer.open_text(":c00006"), None);
        assert_eq!(signer.open_text("123:c00010"), None);
        assert_eq!(signer.open_text(&format!("{}.:zzzz", "0".repeat(24))), None);

        for number in [1, 2, 4096, u64::from(u32::MAX)] {
            let cursor = signer.sign_number(number);
            assert_eq!(signer.open_number(cursor), Some(number));
            assert_eq!(other.open_number(cursor), None);
            assert_eq!(signer.open_number(cursor ^ 1), None);
            assert_eq!(signer.open_number(number), None);
        }
    }
}
