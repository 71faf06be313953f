//! Cluster hash slots: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384.
//!
//! The hash-tag rule is the server's own (`keyHashSlot` in `cluster.c`): if the
//! key contains a `{`, and a `}` follows it with at least one byte between
//! them, only the bytes between the *first* `{` and the first `}` after it are
//! hashed. `{}` (an empty tag) and a `{` without a closing `}` hash the whole
//! key. Keys are bytes: non-UTF-8 keys hash like any other.
//!
//! # Example
//!
//! ```
//! use redis_resilience_core::slot::{key_slot, SLOT_COUNT};
//!
//! assert_eq!(key_slot(b"foo"), 12182);
//! // Keys with the same hash tag share a slot.
//! assert_eq!(key_slot(b"{user:42}:name"), key_slot(b"{user:42}:email"));
//! // An empty tag hashes the whole key.
//! assert_eq!(key_slot(b"{}x"), key_slot(b"{}x"));
//! assert!(key_slot(&[0xff, 0xfe]) < SLOT_COUNT);
//! ```

/// Number of hash slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster uses it.
#[must_use]
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from(((crc >> 8) as u8) ^ byte)]
    })
}

/// The part of `key` that is hashed: its hash tag if it has a non-empty one, else the whole key.
#[must_use]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let after_open = &key[open + 1..];
    match after_open.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &after_open[..close],
        _ => key,
    }
}

/// The hash slot (0..16384) of `key`.
#[must_use]
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOT_COUNT - 1)
}

const CRC16_TABLE: [u16; 256] = build_table();

const fn build_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_redis_cluster_spec_vector() {
        // The test vector in the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn hash_tags_follow_the_server_rules() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{unclosed"), b"{unclosed");
        assert_eq!(hash_tag(b"no tag"), b"no tag");
        assert_eq!(hash_tag(b""), b"");
    }

    #[test]
    fn known_slots() {
        // Values from the server's `CLUSTER KEYSLOT` (DESIGN §9 quotes ASK/MOVED 12182 for foo).
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
    }
}
