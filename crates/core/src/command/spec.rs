//! The shape of one entry of the command table, as the server describes it in
//! `COMMAND INFO` (flags, legacy first/last/step key positions, key specs).

use std::fmt;

/// Command flags, as `COMMAND INFO` reports them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommandFlags(u32);

macro_rules! command_flags {
    ($($(#[$doc:meta])* $konst:ident = $bit:expr, $name:literal;)*) => {
        impl CommandFlags {
            $($(#[$doc])* pub const $konst: Self = Self(1 << $bit);)*

            /// Every flag with the name the server uses for it.
            pub const ALL: &'static [(Self, &'static str)] = &[$((Self::$konst, $name),)*];
        }
    };
}

command_flags! {
    /// `write`: may modify data.
    WRITE = 0, "write";
    /// `readonly`: never modifies data.
    READONLY = 1, "readonly";
    /// `denyoom`: refused when over `maxmemory`.
    DENYOOM = 2, "denyoom";
    /// `module`: implemented by a module.
    MODULE = 3, "module";
    /// `admin`: administrative.
    ADMIN = 4, "admin";
    /// `pubsub`: publish/subscribe.
    PUBSUB = 5, "pubsub";
    /// `noscript`: not allowed in scripts.
    NOSCRIPT = 6, "noscript";
    /// `blocking`: may block the client.
    BLOCKING = 7, "blocking";
    /// `loading`: allowed while loading.
    LOADING = 8, "loading";
    /// `stale`: allowed on a replica with stale data.
    STALE = 9, "stale";
    /// `skip_monitor`.
    SKIP_MONITOR = 10, "skip_monitor";
    /// `skip_slowlog`.
    SKIP_SLOWLOG = 11, "skip_slowlog";
    /// `asking`: allowed on an importing slot.
    ASKING = 12, "asking";
    /// `fast`: O(1) or O(log N).
    FAST = 13, "fast";
    /// `no_auth`: allowed before AUTH.
    NO_AUTH = 14, "no_auth";
    /// `may_replicate`.
    MAY_REPLICATE = 15, "may_replicate";
    /// `sentinel`: available in Sentinel mode.
    SENTINEL = 16, "sentinel";
    /// `only_sentinel`.
    ONLY_SENTINEL = 17, "only_sentinel";
    /// `no_mandatory_keys`: may have no keys.
    NO_MANDATORY_KEYS = 18, "no_mandatory_keys";
    /// `no_async_loading`.
    NO_ASYNC_LOADING = 19, "no_async_loading";
    /// `no_multi`: not allowed in MULTI.
    NO_MULTI = 20, "no_multi";
    /// `movablekeys`: key positions depend on the arguments.
    MOVABLEKEYS = 21, "movablekeys";
    /// `allow_busy`: allowed while a script runs.
    ALLOW_BUSY = 22, "allow_busy";
}

impl CommandFlags {
    /// No flags.
    pub const EMPTY: Self = Self(0);

    /// From raw bits (as the generated table writes them).
    #[must_use]
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The raw bits.
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Both sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flag named `name` in `COMMAND INFO`, if it is one we know.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, known)| known.eq_ignore_ascii_case(name))
            .map(|(flag, _)| *flag)
    }

    /// Names of the flags set, in table order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::ALL
            .iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
    }
}

impl fmt::Debug for CommandFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// Flags of one key spec that matter for finding keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeySpecFlags(u8);

impl KeySpecFlags {
    /// `not_key`: the argument is not a key (e.g. a channel); ignored when finding keys.
    pub const NOT_KEY: Self = Self(1);
    /// `incomplete`: the spec may miss keys; another way of finding them is needed.
    pub const INCOMPLETE: Self = Self(2);
    /// `variable_flags`: access flags depend on the arguments.
    pub const VARIABLE_FLAGS: Self = Self(4);

    /// From raw bits.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits)
    }

    /// The raw bits.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Where the search for a key spec's keys begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BeginSearch {
    /// At this argument index (the command name is index 0).
    Index(i32),
    /// After the first argument equal (ASCII case-insensitive) to `keyword`, searching
    /// from `start_from` (negative: from the end, backwards).
    Keyword {
        /// The keyword, e.g. `STREAMS`.
        keyword: &'static str,
        /// Where the search starts.
        start_from: i32,
    },
    /// Not describable: the command needs its own logic.
    Unknown,
}

/// How a key spec's keys are found from where the search began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindKeys {
    /// Keys from the begin index to `last_key` (relative to it; negative: counted
    /// from the end), every `step` arguments; a non-zero `limit` takes only
    /// `1/limit` of the remaining arguments.
    Range {
        /// Index of the last key relative to the first one, or negative from the end.
        last_key: i32,
        /// Distance between keys.
        step: i32,
        /// If non-zero, only `(remaining / limit)` arguments are keys.
        limit: i32,
    },
    /// The argument at `key_num_index` (relative) holds the number of keys,
    /// which start at `first_key` (relative) every `step`.
    KeyNum {
        /// Index of the key count, relative to the begin index.
        key_num_index: i32,
        /// Index of the first key, relative to the begin index.
        first_key: i32,
        /// Distance between keys.
        step: i32,
    },
    /// Not describable.
    Unknown,
}

/// One key specification of a command (Redis 7 key specs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySpec {
    /// Flags that matter for key extraction.
    pub flags: KeySpecFlags,
    /// Where the search begins.
    pub begin_search: BeginSearch,
    /// How keys are found from there.
    pub find_keys: FindKeys,
}

/// Where a keyless command must run in a cluster (the `request_policy` tip).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RequestPolicy {
    /// No tip: by its keys' slot, or on any node when it has none.
    #[default]
    Default,
    /// On every primary (`KEYS`, `DBSIZE`, `FLUSHALL`, …).
    AllShards,
    /// On every node, replicas included (`CONFIG SET`, `SCRIPT LOAD`, …).
    AllNodes,
    /// Split by slot (`MSET`, `DEL`, `MGET`, …).
    MultiShard,
    /// Needs its own handling (e.g. `SCAN`-like cursors).
    Special,
}

impl RequestPolicy {
    /// From the tip's value (`all_shards`, …); unknown values are `Special`.
    #[must_use]
    pub fn from_tip(value: &str) -> Self {
        match value {
            "all_shards" => Self::AllShards,
            "all_nodes" => Self::AllNodes,
            "multi_shard" => Self::MultiShard,
            _ => Self::Special,
        }
    }

    /// Whether the command must run on more than one node to mean what it says.
    #[must_use]
    pub fn is_fan_out(self) -> bool {
        matches!(self, Self::AllShards | Self::AllNodes)
    }
}

/// One command of the static table, as the server describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandSpec {
    /// Lower-case name; subcommands as `container|sub`, e.g. `config|get`.
    pub name: &'static str,
    /// The server's arity: positive is exact, negative is a minimum (name included).
    pub arity: i32,
    /// Flags.
    pub flags: CommandFlags,
    /// Legacy position of the first key (0: none).
    pub first_key: i32,
    /// Legacy position of the last key (negative: from the end).
    pub last_key: i32,
    /// Legacy step between keys.
    pub step: i32,
    /// Key specs.
    pub key_specs: &'static [KeySpec],
    /// Where it must run in a cluster.
    pub request_policy: RequestPolicy,
    /// Whether the command is a container (`CONFIG`, `CLIENT`, …) whose second
    /// argument names a subcommand.
    pub has_subcommands: bool,
}
