//! What the library knows about a command before sending it: [`CommandInfo`].
//!
//! Flags and key positions come from the server's own `COMMAND` reply,
//! generated into a static table ([`commands`]) by
//! `cargo run -p redis-resilience-core --example generate_command_table`, and
//! checked against a live redis-server by the `command_table_live` test so it
//! cannot drift. Idempotency is ours ([`idempotency`]).
//!
//! # Example
//!
//! ```
//! use redis_resilience_core::command::{CommandInfo, KeySlot};
//! use redis_resilience_core::slot::key_slot;
//!
//! let get = CommandInfo::of(&redis::cmd("GET").arg("user:42").clone());
//! assert_eq!(get.name(), "get");
//! assert!(get.is_readonly() && get.is_idempotent());
//! assert_eq!(get.slot(), KeySlot::Single(key_slot(b"user:42")));
//!
//! let incr = CommandInfo::of(&redis::cmd("INCR").arg("hits").clone());
//! assert!(incr.is_write() && !incr.is_idempotent());
//!
//! let mget = CommandInfo::of(&redis::cmd("MGET").arg("a").arg("b").clone());
//! assert_eq!(mget.slot(), KeySlot::Cross);
//!
//! // Unknown commands are treated as non-idempotent writes with unknown keys.
//! let unknown = CommandInfo::of(&redis::cmd("NOSUCHCMD").arg("x").clone());
//! assert!(!unknown.is_known() && unknown.is_write() && !unknown.is_idempotent());
//! assert_eq!(unknown.slot(), KeySlot::Unknown);
//! ```

pub mod idempotency;
mod keys;
mod spec;
mod table;

pub use keys::KeyPositions;
pub use spec::{
    BeginSearch, CommandFlags, CommandSpec, FindKeys, KeySpec, KeySpecFlags, RequestPolicy,
};
pub use table::SERVER_VERSION;

use crate::slot::key_slot;

/// Every command and subcommand of the table, sorted by name.
#[must_use]
pub fn commands() -> &'static [CommandSpec] {
    table::COMMANDS
}

/// Looks a command up by name (ASCII case-insensitive), and for container
/// commands (`CONFIG`, `CLIENT`, `XINFO`, …) by its subcommand. `None` for
/// unknown commands and unknown subcommands.
#[must_use]
pub fn lookup(name: &[u8], subcommand: Option<&[u8]>) -> Option<&'static CommandSpec> {
    let spec = find_lowercase(name)?;
    if !spec.has_subcommands {
        return Some(spec);
    }
    let sub = subcommand?;
    let mut full = Vec::with_capacity(name.len() + 1 + sub.len());
    full.extend_from_slice(name);
    full.push(b'|');
    full.extend_from_slice(sub);
    find_lowercase(&full)
}

/// Binary search with ASCII case folding, without allocating.
fn find_lowercase(name: &[u8]) -> Option<&'static CommandSpec> {
    table::COMMANDS
        .binary_search_by(|spec| {
            spec.name
                .bytes()
                .cmp(name.iter().map(u8::to_ascii_lowercase))
        })
        .ok()
        .map(|i| &table::COMMANDS[i])
}

/// The slot a request's keys map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySlot {
    /// The request has no keys (it may go to any primary).
    NoKeys,
    /// Every key hashes to this slot.
    Single(u16),
    /// The keys span several slots.
    Cross,
    /// The keys are not known (unknown command).
    Unknown,
}

impl KeySlot {
    /// Adds one key's slot.
    #[must_use]
    pub fn with(self, slot: u16) -> Self {
        match self {
            Self::NoKeys => Self::Single(slot),
            Self::Single(known) if known == slot => self,
            Self::Single(_) | Self::Cross => Self::Cross,
            Self::Unknown => Self::Unknown,
        }
    }

    /// Combines the slots of two commands of one pipeline.
    #[must_use]
    pub fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::Unknown, _) | (_, Self::Unknown) => Self::Unknown,
            (Self::NoKeys, x) | (x, Self::NoKeys) => x,
            (Self::Single(a), Self::Single(b)) if a == b => self,
            _ => Self::Cross,
        }
    }

    /// The slot, when there is exactly one.
    #[must_use]
    pub fn single(self) -> Option<u16> {
        match self {
            Self::Single(slot) => Some(slot),
            _ => None,
        }
    }
}

/// What is known about one command invocation: its table entry, flags, keys,
/// slot and idempotency. Computed once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    spec: Option<&'static CommandSpec>,
    name: &'static str,
    flags: CommandFlags,
    keys: KeyPositions,
    slot: KeySlot,
    idempotent: bool,
}

impl CommandInfo {
    /// Information about one command.
    #[must_use]
    pub fn of(cmd: &redis::Cmd) -> Self {
        let args: Vec<&[u8]> = cmd
            .args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => bytes,
                // A cursor argument is a number, never a key or a name.
                _ => &b"0"[..],
            })
            .collect();
        Self::of_args(&args)
    }

    /// Information about a command given as its arguments (`args[0]` is the name).
    #[must_use]
    pub fn of_args(args: &[&[u8]]) -> Self {
        let Some(spec) = args
            .first()
            .and_then(|name| lookup(name, args.get(1).copied()))
        else {
            return Self::unknown();
        };
        let found = keys::find(spec, args);
        let slot = match found.keys {
            KeyPositions::Unknown => KeySlot::Unknown,
            _ => (1..args.len())
                .filter(|&i| {
                    let i = i as u32;
                    found.keys.contains(i) || found.routing_only.contains(i)
                })
                .fold(KeySlot::NoKeys, |slot, i| slot.with(key_slot(args[i]))),
        };
        let idempotent = spec.flags.contains(CommandFlags::READONLY)
            || idempotency::depends_on_args(spec.name, args)
                .unwrap_or_else(|| idempotency::non_idempotent_reason(spec.name).is_none());
        Self {
            spec: Some(spec),
            name: spec.name,
            flags: spec.flags,
            keys: found.keys,
            slot,
            idempotent,
        }
    }

    /// Information about a pipeline: read-only and idempotent only if every
    /// command is; a transaction (`MULTI`/`EXEC`) is never idempotent; the slot
    /// is the one all keys share, if they do.
    #[must_use]
    pub fn of_pipeline(pipeline: &redis::Pipeline) -> Self {
        let mut flags = CommandFlags::READONLY;
        let mut slot = KeySlot::NoKeys;
        let mut idempotent = !pipeline.is_transaction();
        let mut keys = KeyPositions::None;
        for cmd in pipeline.cmd_iter() {
            let info = Self::of(cmd);
            if !info.is_readonly() {
                flags = CommandFlags::EMPTY;
            }
            for extra in [CommandFlags::WRITE, CommandFlags::BLOCKING] {
                if info.flags.contains(extra) {
                    flags = flags.union(extra);
                }
            }
            if info.keys == KeyPositions::Unknown {
                keys = KeyPositions::Unknown;
            }
            idempotent &= info.idempotent;
            slot = slot.merge(info.slot);
        }
        Self {
            spec: None,
            name: if pipeline.is_transaction() {
                "transaction"
            } else {
                "pipeline"
            },
            flags,
            keys,
            slot,
            idempotent,
        }
    }

    /// An unknown command: a non-idempotent write with unknown keys.
    #[must_use]
    pub fn unknown() -> Self {
        Self {
            spec: None,
            name: "unknown",
            flags: CommandFlags::WRITE,
            keys: KeyPositions::Unknown,
            slot: KeySlot::Unknown,
            idempotent: false,
        }
    }

    /// The table entry, for known commands.
    #[must_use]
    pub fn spec(&self) -> Option<&'static CommandSpec> {
        self.spec
    }

    /// Whether the command is in the table.
    #[must_use]
    pub fn is_known(&self) -> bool {
        self.spec.is_some()
    }

    /// Lower-case name (`config|get` for subcommands); `unknown` for unknown
    /// commands, `pipeline` or `transaction` for pipelines. Bounded, so safe as
    /// a metric label.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Flags.
    #[must_use]
    pub fn flags(&self) -> CommandFlags {
        self.flags
    }

    /// Never modifies data: may be served by a replica or a cache.
    #[must_use]
    pub fn is_readonly(&self) -> bool {
        self.flags.contains(CommandFlags::READONLY)
    }

    /// May modify data.
    #[must_use]
    pub fn is_write(&self) -> bool {
        self.flags.contains(CommandFlags::WRITE)
    }

    /// May block the connection (`BLPOP`, `XREAD BLOCK`, …).
    #[must_use]
    pub fn is_blocking(&self) -> bool {
        self.flags.contains(CommandFlags::BLOCKING)
    }

    /// Safe to send again when its first send's fate is unknown.
    #[must_use]
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Overrides the idempotency classification.
    pub fn set_idempotent(&mut self, idempotent: bool) {
        self.idempotent = idempotent;
    }

    /// Where the command must run in a cluster (`Default` for unknown commands and pipelines).
    #[must_use]
    pub fn request_policy(&self) -> RequestPolicy {
        self.spec
            .map_or(RequestPolicy::Default, |spec| spec.request_policy)
    }

    /// Key positions in the command's arguments (not meaningful for pipelines).
    #[must_use]
    pub fn key_positions(&self) -> &KeyPositions {
        &self.keys
    }

    /// The slot of the keys.
    #[must_use]
    pub fn slot(&self) -> KeySlot {
        self.slot
    }
}
