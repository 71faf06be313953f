//! Multi-key commands whose keys span slots: split per slot, merged back.
//!
//! Only commands whose per-slot parts compose exactly: `MGET` (values in the
//! caller's key order), `MSET` (`OK` when every part is), `DEL`, `UNLINK`,
//! `EXISTS`, `TOUCH` (counts summed). Anything else across slots is refused
//! before sending (`CrossSlot`).

use redis::Value;
use redis_resilience_core::slot::key_slot;
use redis_resilience_core::{Command, Error, ErrorKind, Request, Sent};

/// How the parts' replies become one.
#[derive(Debug)]
pub(super) enum Merge {
    /// `MGET`: for each of the caller's keys, (part, index in that part's reply).
    Values(Vec<(usize, usize)>),
    /// `MSET`: `OK`.
    AllOk,
    /// `DEL`, `UNLINK`, `EXISTS`, `TOUCH`: the sum.
    Sum,
}

/// A request split into per-slot commands.
#[derive(Debug)]
pub(super) struct Split {
    pub(super) parts: Vec<(u16, redis::Cmd)>,
    pub(super) merge: Merge,
}

/// Splits `request` per slot, if it is a command that can be split.
pub(super) fn split(request: &Request) -> Option<Split> {
    let Command::Single(cmd) = request.command() else {
        return None;
    };
    let name = request.info().name();
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let (command, rest) = args.split_first()?;
    let (group_size, merge) = match name {
        "mget" => (1, Merge::Values(Vec::with_capacity(rest.len()))),
        "mset" => (2, Merge::AllOk),
        "del" | "unlink" | "exists" | "touch" => (1, Merge::Sum),
        _ => return None,
    };
    if rest.is_empty() || rest.len() % group_size != 0 {
        return None;
    }
    let mut parts: Vec<(u16, redis::Cmd)> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut order = Vec::new();
    for group in rest.chunks(group_size) {
        let slot = key_slot(group[0]);
        let part = match parts.iter().position(|(s, _)| *s == slot) {
            Some(part) => part,
            None => {
                let mut part = redis::Cmd::new();
                part.arg(*command);
                parts.push((slot, part));
                counts.push(0);
                parts.len() - 1
            }
        };
        for arg in group {
            parts[part].1.arg(*arg);
        }
        order.push((part, counts[part]));
        counts[part] += 1;
    }
    let merge = match merge {
        Merge::Values(_) => Merge::Values(order),
        other => other,
    };
    Some(Split { parts, merge })
}

/// Merges the parts' replies, or says why the whole failed.
///
/// When some parts of a write ran and another failed, the error is
/// `Sent::Maybe`: part of the command took effect.
pub(super) fn merge(
    merge: &Merge,
    replies: Vec<Result<Value, Error>>,
    is_write: bool,
) -> Result<Value, Error> {
    let some_ran = replies
        .iter()
        .any(|reply| !matches!(reply, Err(err) if err.sent() == Sent::No));
    let mut values = Vec::with_capacity(replies.len());
    for reply in replies {
        match reply {
            Ok(value) => values.push(value),
            Err(err) if is_write && some_ran && err.sent() == Sent::No => {
                return Err(Error::new(
                    err.kind().clone(),
                    Sent::Maybe,
                    format!("{err} (other slots of this command were written)"),
                ));
            }
            Err(err) => return Err(err),
        }
    }
    match merge {
        Merge::Values(order) => {
            let mut parts: Vec<Vec<Value>> = Vec::with_capacity(values.len());
            for value in values {
                match value {
                    Value::Array(items) => parts.push(items),
                    other => return Err(unexpected(&other)),
                }
            }
            order
                .iter()
                .map(|&(part, index)| {
                    parts
                        .get_mut(part)
                        .and_then(|items| items.get_mut(index))
                        .map(std::mem::take)
                        .ok_or_else(|| unexpected(&Value::Nil))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Merge::AllOk => match values.iter().find(|value| !matches!(value, Value::Okay)) {
            None => Ok(Value::Okay),
            Some(other) => Err(unexpected(other)),
        },
        Merge::Sum => values
            .iter()
            .try_fold(0i64, |sum, value| match value {
                Value::Int(n) => Ok(sum.saturating_add(*n)),
                other => Err(unexpected(other)),
            })
            .map(Value::Int),
    }
}

fn unexpected(value: &Value) -> Error {
    Error::new(
        ErrorKind::Protocol,
        Sent::Yes,
        format!("unexpected reply to a split command part: {value:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(args: &[&str]) -> Request {
        let mut cmd = redis::Cmd::new();
        for arg in args {
            cmd.arg(*arg);
        }
        Request::new(cmd)
    }

    #[test]
    fn mget_keeps_the_callers_order() {
        let split = split(&request(&["MGET", "a", "b", "{a}x", "c"])).expect("splits");
        // a and {a}x share a slot.
        assert_eq!(split.parts.len(), 3);
        let replies = split
            .parts
            .iter()
            .map(|(_, cmd)| {
                let keys: Vec<Value> = cmd
                    .args_iter()
                    .skip(1)
                    .map(|arg| match arg {
                        redis::Arg::Simple(bytes) => Value::BulkString(bytes.to_vec()),
                        _ => Value::Nil,
                    })
                    .collect();
                Ok(Value::Array(keys))
            })
            .collect();
        let merged = merge(&split.merge, replies, false).expect("merges");
        let expected: Vec<Value> = ["a", "b", "{a}x", "c"]
            .iter()
            .map(|k| Value::BulkString(k.as_bytes().to_vec()))
            .collect();
        assert_eq!(merged, Value::Array(expected));
    }

    #[test]
    fn writes_report_partial_failure_as_maybe() {
        let split = split(&request(&["MSET", "a", "1", "b", "2"])).expect("splits");
        assert_eq!(split.parts.len(), 2);
        let err = merge(
            &split.merge,
            vec![Ok(Value::Okay), Err(Error::connect("down"))],
            true,
        )
        .expect_err("one part failed");
        assert_eq!(err.sent(), Sent::Maybe);
        let sum = merge(
            &Merge::Sum,
            vec![Ok(Value::Int(2)), Ok(Value::Int(3))],
            true,
        );
        assert_eq!(sum.ok(), Some(Value::Int(5)));
    }

    #[test]
    fn other_commands_and_malformed_ones_do_not_split() {
        assert!(split(&request(&["SUNION", "a", "b"])).is_none());
        assert!(split(&request(&["MSET", "a", "1", "b"])).is_none());
        assert!(split(&request(&["MGET"])).is_none());
    }
}
