//! Which commands are safe to send twice: our classification, command by command.
//!
//! A command is *idempotent* here when running it a second time, after a first
//! run whose reply was lost (`Sent::Maybe`), neither changes the data further
//! nor changes a reply the caller acts on. `RetryLayer` retries a command whose
//! fate is unknown only if it is idempotent.
//!
//! The rule:
//! - commands the server flags `readonly` are idempotent;
//! - commands in [`NON_IDEMPOTENT`] are not (each with the reason), and three
//!   depend on their arguments: `SET` with `GET` or `NX`, `ZADD` with `INCR`,
//!   and `XADD` with an auto-generated (`*`) id are not idempotent, the same
//!   commands otherwise are;
//! - every other known command is (e.g. `SET`, `DEL`, `HSET`, `EXPIRE`, `SADD`);
//! - unknown commands and transactions (`MULTI`/`EXEC` pipelines) are not.
//!
//! A caller that knows better (a script that only reads) can override the
//! classification per request with `Request::assume_idempotent`.

/// Commands that are never safe to send twice, with the reason.
pub const NON_IDEMPOTENT: &[(&str, &str)] = &[
    ("append", "appends the value again"),
    ("bitfield", "its INCRBY operation adds again"),
    ("blmove", "moves another element"),
    ("blmpop", "pops another element"),
    ("blpop", "pops another element"),
    ("brpop", "pops another element"),
    ("brpoplpush", "moves another element"),
    ("bzmpop", "pops another member"),
    ("bzpopmax", "pops another member"),
    ("bzpopmin", "pops another member"),
    ("cluster|failover", "starts another failover"),
    ("debug", "debugging actions have side effects"),
    ("decr", "decrements again"),
    ("decrby", "decrements again"),
    ("discard", "transaction control is connection state"),
    (
        "eval",
        "a script may do anything (use EVAL_RO, or mark the request idempotent)",
    ),
    (
        "evalsha",
        "a script may do anything (use EVALSHA_RO, or mark the request idempotent)",
    ),
    ("exec", "transaction control is connection state"),
    ("failover", "starts another failover"),
    (
        "fcall",
        "a function may do anything (use FCALL_RO, or mark the request idempotent)",
    ),
    (
        "getdel",
        "the retry returns nil: the deleted value is lost to the caller",
    ),
    (
        "getset",
        "the retry returns the value this call wrote, not the old one",
    ),
    ("hincrby", "adds again"),
    ("hincrbyfloat", "adds again"),
    (
        "hsetnx",
        "the retry answers 0, so the caller believes another client set it",
    ),
    ("incr", "increments again"),
    ("incrby", "increments again"),
    ("incrbyfloat", "increments again"),
    ("linsert", "inserts another element"),
    ("lmove", "moves another element"),
    ("lmpop", "pops another element"),
    ("lpop", "pops another element"),
    ("lpush", "pushes another element"),
    ("lpushx", "pushes another element"),
    ("lrem", "removes further matching elements"),
    (
        "ltrim",
        "trims by position: with start > 0 a second run drops further elements",
    ),
    ("monitor", "switches the connection into monitor mode"),
    (
        "msetnx",
        "the retry answers 0, so the caller believes another client set them",
    ),
    ("multi", "transaction control is connection state"),
    ("psubscribe", "subscription is connection state"),
    ("publish", "delivers the message again"),
    (
        "rename",
        "after success the retry fails with 'no such key', or renames a recreated source over the destination",
    ),
    (
        "renamenx",
        "the retry fails or answers 0 after the first run succeeded",
    ),
    ("rpop", "pops another element"),
    ("rpoplpush", "moves another element"),
    ("rpush", "pushes another element"),
    ("rpushx", "pushes another element"),
    (
        "setnx",
        "the retry answers 0, so the caller believes another client holds the key (a lock would leak)",
    ),
    ("shutdown", "stops the server"),
    ("spop", "pops another member"),
    ("spublish", "delivers the message again"),
    ("ssubscribe", "subscription is connection state"),
    ("subscribe", "subscription is connection state"),
    ("xautoclaim", "claims again, incrementing delivery counts"),
    ("xclaim", "claims again, incrementing delivery counts"),
    (
        "xreadgroup",
        "delivers new entries and adds them to the consumer's pending list",
    ),
    ("zincrby", "adds again"),
    ("zmpop", "pops another member"),
    ("zpopmax", "pops another member"),
    ("zpopmin", "pops another member"),
    (
        "zremrangebyrank",
        "removes by rank: a second run removes the members now at those ranks",
    ),
];

/// Why `name` (lower case, `container|sub` for subcommands) is not idempotent,
/// if it is in [`NON_IDEMPOTENT`].
#[must_use]
pub fn non_idempotent_reason(name: &str) -> Option<&'static str> {
    NON_IDEMPOTENT
        .binary_search_by(|(known, _)| (*known).cmp(name))
        .ok()
        .map(|i| NON_IDEMPOTENT[i].1)
}

/// Commands whose idempotency depends on their arguments (`args[0]` is the name).
pub(super) fn depends_on_args(name: &str, args: &[&[u8]]) -> Option<bool> {
    let has_option = |option: &[u8]| {
        args.iter()
            .skip(3)
            .any(|arg| arg.eq_ignore_ascii_case(option))
    };
    match name {
        // SET key value [NX|XX] [GET] [EX…]: GET returns the old value, NX answers nil on the retry.
        "set" => Some(!(has_option(b"GET") || has_option(b"NX"))),
        // ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member…: INCR adds again.
        "zadd" => Some(
            !args
                .iter()
                .skip(2)
                .any(|arg| arg.eq_ignore_ascii_case(b"INCR")),
        ),
        // XADD key [NOMKSTREAM] [MAXLEN|MINID …] <* | id> field value…: `*` makes a new entry.
        "xadd" => Some(!args.iter().skip(2).any(|arg| *arg == b"*")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_for_binary_search() {
        assert!(NON_IDEMPOTENT.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn arguments_decide_for_set_zadd_xadd() {
        let args =
            |s: &str| -> Vec<Vec<u8>> { s.split(' ').map(|a| a.as_bytes().to_vec()).collect() };
        let check = |name: &str, line: &str| {
            let owned = args(line);
            let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            depends_on_args(name, &refs)
        };
        assert_eq!(check("set", "SET k v"), Some(true));
        assert_eq!(check("set", "SET k v EX 10"), Some(true));
        assert_eq!(check("set", "SET k v NX PX 3000"), Some(false));
        assert_eq!(check("set", "SET k v get"), Some(false));
        // A value that happens to be "NX" is a value, not an option.
        assert_eq!(check("set", "SET k NX"), Some(true));
        assert_eq!(check("zadd", "ZADD k 1 m"), Some(true));
        assert_eq!(check("zadd", "ZADD k INCR 1 m"), Some(false));
        assert_eq!(check("xadd", "XADD s * f v"), Some(false));
        assert_eq!(check("xadd", "XADD s 1-1 f v"), Some(true));
        assert_eq!(check("get", "GET k"), None);
    }
}
