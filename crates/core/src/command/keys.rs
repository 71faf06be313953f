//! Finding the keys of a command from its key specs, as the server does
//! (`getKeysUsingKeySpecs` in `db.c`), with the server's own fallbacks for the
//! commands whose specs are incomplete (`SORT … STORE`, `MIGRATE … KEYS`).

use super::spec::{BeginSearch, CommandSpec, FindKeys, KeySpecFlags};

/// Positions (argument indexes, the command name being 0) of a command's keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPositions {
    /// The command has no keys.
    None,
    /// `first..=last`, every `step`: no allocation for the common shapes.
    Range {
        /// First key index.
        first: u32,
        /// Last key index.
        last: u32,
        /// Step between keys (at least 1).
        step: u32,
    },
    /// Any other set of positions, ascending.
    List(Box<[u32]>),
    /// The keys cannot be known without asking the server (unknown command, or
    /// a command whose keys we cannot find from its arguments).
    Unknown,
}

impl KeyPositions {
    /// From ascending, de-duplicated positions.
    fn from_sorted(positions: &[u32]) -> Self {
        match positions {
            [] => Self::None,
            [only] => Self::Range {
                first: *only,
                last: *only,
                step: 1,
            },
            [first, second, ..] => {
                let step = second - first;
                if positions.windows(2).all(|w| w[1] - w[0] == step) {
                    Self::Range {
                        first: *first,
                        last: positions[positions.len() - 1],
                        step,
                    }
                } else {
                    Self::List(positions.into())
                }
            }
        }
    }

    /// Whether `index` is a key position. `Unknown` knows none.
    #[must_use]
    pub fn contains(&self, index: u32) -> bool {
        match self {
            Self::None | Self::Unknown => false,
            Self::Range { first, last, step } => {
                index >= *first && index <= *last && (index - first).is_multiple_of(*step)
            }
            Self::List(list) => list.binary_search(&index).is_ok(),
        }
    }

    /// Number of keys (0 for `Unknown`).
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::None | Self::Unknown => 0,
            Self::Range { first, last, step } => ((last - first) / step + 1) as usize,
            Self::List(list) => list.len(),
        }
    }

    /// Whether no key is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the key specs yield for one invocation.
pub(super) struct Found {
    /// Keys, as `COMMAND GETKEYS` would name them.
    pub(super) keys: KeyPositions,
    /// Arguments that are not keys but decide routing (sharded pub/sub channels).
    pub(super) routing_only: KeyPositions,
}

/// Finds key positions of `args` (`args[0]` is the command name, `args[1]` the
/// subcommand for containers). `None` when the specs cannot tell.
pub(super) fn find(spec: &CommandSpec, args: &[&[u8]]) -> Found {
    let argc = args.len() as i64;
    let mut keys = Vec::new();
    let mut routing = Vec::new();
    let mut complete = true;
    for key_spec in spec.key_specs {
        if key_spec.flags.contains(KeySpecFlags::INCOMPLETE) {
            complete = false;
        }
        let target = if key_spec.flags.contains(KeySpecFlags::NOT_KEY) {
            &mut routing
        } else {
            &mut keys
        };
        let first: i64 = match key_spec.begin_search {
            BeginSearch::Index(i) => i64::from(i),
            BeginSearch::Keyword {
                keyword,
                start_from,
            } => match find_keyword(args, keyword, start_from) {
                Some(after) => after,
                // Keyword absent: this spec has no keys in this invocation.
                None => continue,
            },
            BeginSearch::Unknown => {
                complete = false;
                continue;
            }
        };
        let (first, last, step) = match key_spec.find_keys {
            FindKeys::Range {
                last_key,
                step,
                limit,
            } => {
                let last = if last_key >= 0 {
                    first + i64::from(last_key)
                } else if limit == 0 {
                    argc + i64::from(last_key)
                } else {
                    first + ((argc - first) / i64::from(limit) + i64::from(last_key))
                };
                (first, last, i64::from(step))
            }
            FindKeys::KeyNum {
                key_num_index,
                first_key,
                step,
            } => {
                let count_at = first + i64::from(key_num_index);
                let Some(count) = usize::try_from(count_at)
                    .ok()
                    .and_then(|i| args.get(i))
                    .and_then(|arg| std::str::from_utf8(arg).ok())
                    .and_then(|text| text.parse::<i64>().ok())
                    .filter(|n| *n >= 0)
                else {
                    // Invalid key count: the server refuses the command; no keys.
                    continue;
                };
                let first = first + i64::from(first_key);
                (first, first + count - 1, i64::from(step))
            }
            FindKeys::Unknown => {
                complete = false;
                continue;
            }
        };
        if step <= 0 {
            continue;
        }
        let mut i = first;
        while i <= last {
            // Out of range means too few arguments: the server answers an
            // arity error and there are no keys to route by.
            if i >= 1
                && i < argc
                && let Ok(i) = u32::try_from(i)
            {
                target.push(i);
            }
            i += step;
        }
    }
    let keys = if complete {
        Some(keys)
    } else {
        native(spec.name, args)
    };
    let keys = match keys {
        Some(mut keys) => {
            keys.sort_unstable();
            keys.dedup();
            KeyPositions::from_sorted(&keys)
        }
        None => KeyPositions::Unknown,
    };
    routing.sort_unstable();
    routing.dedup();
    Found {
        keys,
        routing_only: KeyPositions::from_sorted(&routing),
    }
}

/// Index just after `keyword`, searched from `start_from` (negative: from the end, backwards).
fn find_keyword(args: &[&[u8]], keyword: &str, start_from: i32) -> Option<i64> {
    let argc = args.len() as i64;
    let start = if start_from > 0 {
        i64::from(start_from)
    } else {
        argc + i64::from(start_from)
    };
    let matches = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| args.get(i))
            .is_some_and(|arg| arg.eq_ignore_ascii_case(keyword.as_bytes()))
    };
    if start_from > 0 {
        (start..argc).find(|&i| matches(i)).map(|i| i + 1)
    } else {
        (1..=start).rev().find(|&i| matches(i)).map(|i| i + 1)
    }
}

/// The server's own key finders for commands whose specs are incomplete.
fn native(name: &str, args: &[&[u8]]) -> Option<Vec<u32>> {
    match name {
        // SORT key [BY p] [LIMIT o c] [GET p …] [ASC|DESC] [ALPHA] [STORE dest]
        // (`sortGetKeys`: skips option arguments, the last STORE wins).
        "sort" | "sort_ro" => {
            let mut keys = vec![1];
            let mut store = None;
            let mut i = 2;
            while i < args.len() {
                let arg = args[i];
                let skip = if arg.eq_ignore_ascii_case(b"LIMIT") {
                    2
                } else if arg.eq_ignore_ascii_case(b"GET") || arg.eq_ignore_ascii_case(b"BY") {
                    1
                } else if arg.eq_ignore_ascii_case(b"STORE") {
                    if i + 1 < args.len() {
                        store = Some(u32::try_from(i + 1).ok()?);
                    }
                    1
                } else {
                    0
                };
                i += 1 + skip;
            }
            if args.len() < 2 {
                return Some(Vec::new());
            }
            keys.extend(store);
            Some(keys)
        }
        // MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH …] [AUTH2 … …] [KEYS key …]
        // (`migrateGetKeys`: with an empty key, the keys follow KEYS).
        "migrate" => {
            if args.len() < 6 {
                return Some(Vec::new());
            }
            if !args[3].is_empty() {
                return Some(vec![3]);
            }
            let mut i = 6;
            while i < args.len() {
                let arg = args[i];
                if arg.eq_ignore_ascii_case(b"AUTH") {
                    i += 2;
                } else if arg.eq_ignore_ascii_case(b"AUTH2") {
                    i += 3;
                } else if arg.eq_ignore_ascii_case(b"KEYS") {
                    let first = u32::try_from(i + 1).ok()?;
                    let end = u32::try_from(args.len()).ok()?;
                    return Some((first..end).collect());
                } else {
                    i += 1;
                }
            }
            Some(Vec::new())
        }
        _ => None,
    }
}
