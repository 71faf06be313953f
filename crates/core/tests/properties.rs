//! Bad input never panics: arbitrary bytes through the error parser, key
//! extraction and slot hashing; hash tags follow the server's rules.

use proptest::prelude::*;
use redis_resilience_core::command::{self, CommandInfo, KeyPositions, KeySlot};
use redis_resilience_core::slot::{SLOT_COUNT, crc16, hash_tag, key_slot};
use redis_resilience_core::{Error, ErrorKind, Sent};

/// The server's `keyHashSlot`, written as directly as possible.
fn reference_slot(key: &[u8]) -> u16 {
    let mut s = None;
    for (i, b) in key.iter().enumerate() {
        if *b == b'{' {
            s = Some(i);
            break;
        }
    }
    let Some(s) = s else {
        return crc16(key) & 16383;
    };
    let mut e = None;
    for (i, b) in key.iter().enumerate().skip(s + 1) {
        if *b == b'}' {
            e = Some(i);
            break;
        }
    }
    match e {
        Some(e) if e != s + 1 => crc16(&key[s + 1..e]) & 16383,
        _ => crc16(key) & 16383,
    }
}

fn command_name() -> impl Strategy<Value = Vec<u8>> {
    let known: Vec<Vec<u8>> = command::commands()
        .iter()
        .map(|spec| {
            spec.name
                .split('|')
                .next()
                .unwrap_or("")
                .as_bytes()
                .to_vec()
        })
        .collect();
    prop_oneof![
        3 => proptest::sample::select(known),
        1 => proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

fn argument() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..16),
        // Numbers, so key counts and indexes get exercised.
        (-3i64..6).prop_map(|n| n.to_string().into_bytes()),
        proptest::sample::select(vec![
            b"STREAMS".to_vec(),
            b"STORE".to_vec(),
            b"KEYS".to_vec(),
            b"GET".to_vec(),
            b"NX".to_vec(),
            b"*".to_vec(),
            b"{".to_vec(),
            b"}".to_vec(),
        ]),
    ]
}

proptest! {
    #[test]
    fn server_error_parsing_never_panics(reply in proptest::collection::vec(any::<u8>(), 0..64)) {
        let err = Error::from_server_reply(&reply);
        prop_assert_eq!(err.sent(), Sent::Yes);
        if let ErrorKind::Moved { slot, .. } | ErrorKind::Ask { slot, .. } = err.kind() {
            prop_assert!(*slot < SLOT_COUNT);
        }
    }

    #[test]
    fn redirect_texts_round_trip(slot in 0u16..SLOT_COUNT, port in 1u16.., ask in any::<bool>()) {
        let code = if ask { "ASK" } else { "MOVED" };
        let err = Error::from_server_reply(format!("{code} {slot} 10.0.0.1:{port}").as_bytes());
        match err.kind() {
            ErrorKind::Moved { slot: s, addr } | ErrorKind::Ask { slot: s, addr } => {
                prop_assert_eq!(*s, slot);
                prop_assert_eq!(addr.port(), port);
                prop_assert_eq!(addr.host(), "10.0.0.1");
                prop_assert_eq!(matches!(err.kind(), ErrorKind::Ask { .. }), ask);
            }
            other => prop_assert!(false, "parsed as {:?}", other),
        }
    }

    #[test]
    fn slots_match_the_server_rule(key in proptest::collection::vec(any::<u8>(), 0..32)) {
        prop_assert_eq!(key_slot(&key), reference_slot(&key));
        prop_assert!(key_slot(&key) < SLOT_COUNT);
    }

    #[test]
    fn keys_sharing_a_tag_share_a_slot(
        tag in "[^{}]{1,8}",
        a in "[^{]{0,8}",
        b in "[^{]{0,8}",
        suffix_a in ".{0,8}",
        suffix_b in ".{0,8}",
    ) {
        let one = format!("{a}{{{tag}}}{suffix_a}");
        let two = format!("{b}{{{tag}}}{suffix_b}");
        prop_assert_eq!(hash_tag(one.as_bytes()), tag.as_bytes());
        prop_assert_eq!(key_slot(one.as_bytes()), key_slot(two.as_bytes()));
    }

    #[test]
    fn command_info_never_panics(
        name in command_name(),
        args in proptest::collection::vec(argument(), 0..8),
    ) {
        let mut all: Vec<&[u8]> = vec![&name];
        all.extend(args.iter().map(Vec::as_slice));
        let info = CommandInfo::of_args(&all);
        if !info.is_known() {
            prop_assert!(info.is_write() && !info.is_idempotent());
            prop_assert_eq!(info.slot(), KeySlot::Unknown);
        }
        // Positions never point outside the arguments, nor at the name.
        match info.key_positions() {
            KeyPositions::Range { first, last, step } => {
                prop_assert!(*first >= 1 && (*last as usize) < all.len() && *step >= 1);
            }
            KeyPositions::List(list) => {
                prop_assert!(list.iter().all(|&i| i >= 1 && (i as usize) < all.len()));
            }
            _ => {}
        }
    }
}
