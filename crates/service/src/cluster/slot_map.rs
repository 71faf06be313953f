//! The slot map: which shard serves each of the 16384 slots, read from
//! `CLUSTER SHARDS` (Redis 7) or `CLUSTER SLOTS` (older servers).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use redis::Value;
use redis_resilience_core::NodeAddr;
use redis_resilience_core::slot::SLOT_COUNT;

/// Marks a slot no shard serves.
const UNCOVERED: u16 = u16::MAX;

/// One primary and its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Shard {
    pub(crate) primary: NodeAddr,
    /// Replicas not marked failed: `online` ones first, then by replication
    /// offset, highest (least behind) first.
    pub(crate) replicas: Vec<NodeAddr>,
    /// Nodes the cluster marks failed (primary or replicas).
    pub(crate) failed: Vec<NodeAddr>,
}

/// Slot → shard, and the shards.
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    slots: Box<[u16]>,
    shards: Vec<Shard>,
    hash: u64,
}

impl SlotMap {
    /// A map from shards and the slot ranges each serves.
    pub(crate) fn new(shards: Vec<(Shard, Vec<(u16, u16)>)>) -> Self {
        let mut slots = vec![UNCOVERED; usize::from(SLOT_COUNT)].into_boxed_slice();
        let mut list = Vec::with_capacity(shards.len());
        for (index, (shard, ranges)) in shards.into_iter().enumerate() {
            let Ok(index) = u16::try_from(index) else {
                break;
            };
            for (start, end) in ranges {
                let end = end.min(SLOT_COUNT - 1);
                for slot in start..=end {
                    slots[usize::from(slot)] = index;
                }
            }
            list.push(shard);
        }
        let mut map = Self {
            slots,
            shards: list,
            hash: 0,
        };
        map.hash = map.compute_hash();
        map
    }

    /// An empty map (every slot uncovered).
    pub(crate) fn empty() -> Self {
        Self::new(Vec::new())
    }

    fn compute_hash(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.slots.hash(&mut hasher);
        self.shards.hash(&mut hasher);
        hasher.finish()
    }

    /// A hash of the whole map: refreshes swap only when it changes.
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// The shard serving `slot`.
    pub(crate) fn shard_of(&self, slot: u16) -> Option<&Shard> {
        let index = *self.slots.get(usize::from(slot))?;
        self.shards.get(usize::from(index))
    }

    pub(crate) fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Number of slots some shard serves.
    pub(crate) fn covered(&self) -> usize {
        self.slots.iter().filter(|&&s| s != UNCOVERED).count()
    }

    /// Slots whose shard has a primary the cluster does not mark failed.
    pub(crate) fn served(&self) -> usize {
        self.slots
            .iter()
            .filter(|&&s| {
                self.shards
                    .get(usize::from(s))
                    .is_some_and(|shard| !shard.failed.contains(&shard.primary))
            })
            .count()
    }

    /// Whether `addr` is a replica in this map.
    pub(crate) fn is_replica(&self, addr: &NodeAddr) -> bool {
        self.shards
            .iter()
            .any(|shard| shard.replicas.contains(addr))
    }

    /// Every node of the map.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &NodeAddr> {
        self.shards
            .iter()
            .flat_map(|shard| std::iter::once(&shard.primary).chain(&shard.replicas))
    }

    /// A copy where `slot` is served by the primary `addr` (after `MOVED`).
    pub(crate) fn with_slot_moved(&self, slot: u16, addr: &NodeAddr) -> Self {
        let mut map = self.clone();
        let index = match map.shards.iter().position(|shard| &shard.primary == addr) {
            Some(index) => index,
            None => {
                map.shards.push(Shard {
                    primary: addr.clone(),
                    replicas: Vec::new(),
                    failed: Vec::new(),
                });
                map.shards.len() - 1
            }
        };
        if let (Ok(index), Some(entry)) =
            (u16::try_from(index), map.slots.get_mut(usize::from(slot)))
        {
            *entry = index;
        }
        map.hash = map.compute_hash();
        map
    }

    /// Parses a `CLUSTER SHARDS` reply; `host` is the queried node's host, for
    /// nodes that announce no address.
    pub(crate) fn from_shards(reply: &Value, host: &str) -> Option<Self> {
        let Value::Array(entries) = reply else {
            return None;
        };
        let mut shards = Vec::new();
        for entry in entries {
            let fields = pairs(entry)?;
            let ranges = match field(&fields, "slots")? {
                Value::Array(bounds) => bounds
                    .chunks(2)
                    .filter_map(|pair| match pair {
                        [start, end] => Some((slot(start)?, slot(end)?)),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
                _ => return None,
            };
            let Value::Array(nodes) = field(&fields, "nodes")? else {
                return None;
            };
            let mut primary = None;
            let mut replicas: Vec<(bool, i64, NodeAddr)> = Vec::new();
            let mut failed = Vec::new();
            for node in nodes {
                let node = pairs(node)?;
                let addr = node_addr(&node, host)?;
                // `loading` also means "offset 0 as last gossiped", which a
                // replica in sync reports for seconds in a fresh cluster: it
                // is usable, after the `online` ones.
                let health = field(&node, "health").and_then(text);
                let online = health.as_deref() == Some("online");
                let failed_node = !online && health.as_deref() != Some("loading");
                if failed_node {
                    failed.push(addr.clone());
                }
                match field(&node, "role").and_then(text).as_deref() {
                    Some("master") => primary = Some(addr),
                    Some("replica") if !failed_node => {
                        let offset = field(&node, "replication-offset")
                            .and_then(int)
                            .unwrap_or(0);
                        replicas.push((online, offset, addr));
                    }
                    _ => {}
                }
            }
            // A shard without slots (an empty primary, or failed nodes only) serves nothing.
            let Some(primary) = primary else {
                continue;
            };
            if ranges.is_empty() {
                continue;
            }
            replicas.sort_by_key(|(online, offset, _)| std::cmp::Reverse((*online, *offset)));
            shards.push((
                Shard {
                    primary,
                    replicas: replicas.into_iter().map(|(_, _, addr)| addr).collect(),
                    failed,
                },
                ranges,
            ));
        }
        Some(Self::new(shards))
    }

    /// Parses a `CLUSTER SLOTS` reply (the fallback for servers before 7.0).
    pub(crate) fn from_slots(reply: &Value, host: &str) -> Option<Self> {
        let Value::Array(entries) = reply else {
            return None;
        };
        let mut shards: Vec<(Shard, Vec<(u16, u16)>)> = Vec::new();
        for entry in entries {
            let Value::Array(items) = entry else {
                return None;
            };
            let [start, end, nodes @ ..] = items.as_slice() else {
                return None;
            };
            let range = (slot(start)?, slot(end)?);
            let mut addrs = nodes.iter().filter_map(|node| match node {
                Value::Array(parts) => {
                    let ip = parts.first().and_then(text)?;
                    let port = u16::try_from(parts.get(1).and_then(int)?).ok()?;
                    let ip = if ip.is_empty() || ip == "?" {
                        host.to_owned()
                    } else {
                        ip
                    };
                    Some(NodeAddr::new(&ip, port))
                }
                _ => None,
            });
            let Some(primary) = addrs.next() else {
                continue;
            };
            let replicas: Vec<NodeAddr> = addrs.collect();
            match shards
                .iter_mut()
                .find(|(shard, _)| shard.primary == primary)
            {
                Some((_, ranges)) => ranges.push(range),
                None => shards.push((
                    Shard {
                        primary,
                        replicas,
                        failed: Vec::new(),
                    },
                    vec![range],
                )),
            }
        }
        Some(Self::new(shards))
    }
}

fn node_addr(node: &[(String, &Value)], host: &str) -> Option<NodeAddr> {
    let port = field(node, "port")
        .and_then(int)
        .or_else(|| field(node, "tls-port").and_then(int))?;
    let port = u16::try_from(port).ok()?;
    let announced = field(node, "endpoint")
        .and_then(text)
        .filter(|e| !e.is_empty() && e != "?")
        .or_else(|| field(node, "ip").and_then(text).filter(|ip| !ip.is_empty()))
        .unwrap_or_else(|| host.to_owned());
    Some(NodeAddr::new(&announced, port))
}

fn pairs(value: &Value) -> Option<Vec<(String, &Value)>> {
    match value {
        Value::Array(items) => items
            .chunks(2)
            .map(|pair| match pair {
                [k, v] => Some((text(k)?, v)),
                _ => None,
            })
            .collect(),
        Value::Map(items) => items.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => None,
    }
}

fn field<'a>(pairs: &[(String, &'a Value)], key: &str) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

fn slot(value: &Value) -> Option<u16> {
    u16::try_from(int(value)?).ok().filter(|s| *s < SLOT_COUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn node(port: i64, role: &str, health: &str, offset: i64) -> Value {
        Value::Array(vec![
            bulk("id"),
            bulk("x"),
            bulk("port"),
            Value::Int(port),
            bulk("ip"),
            bulk("127.0.0.1"),
            bulk("endpoint"),
            bulk("127.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("replication-offset"),
            Value::Int(offset),
            bulk("health"),
            bulk(health),
        ])
    }

    #[test]
    fn parses_cluster_shards() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![Value::Int(0), Value::Int(8191)]),
                bulk("nodes"),
                Value::Array(vec![
                    node(7000, "master", "online", 10),
                    node(7003, "replica", "online", 8),
                    node(7004, "replica", "online", 9),
                    node(7005, "replica", "failed", 10),
                    node(7006, "replica", "loading", 99),
                ]),
            ]),
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![Value::Int(8192), Value::Int(16383)]),
                bulk("nodes"),
                Value::Array(vec![node(7001, "master", "online", 10)]),
            ]),
        ]);
        let map = SlotMap::from_shards(&reply, "127.0.0.1").expect("parses");
        assert_eq!(map.covered(), 16384);
        let first = map.shard_of(0).expect("slot 0");
        assert_eq!(first.primary, NodeAddr::new("127.0.0.1", 7000));
        // Replicas not failed, most up to date first.
        assert_eq!(
            first.replicas,
            vec![
                NodeAddr::new("127.0.0.1", 7004),
                NodeAddr::new("127.0.0.1", 7003),
                NodeAddr::new("127.0.0.1", 7006),
            ]
        );
        assert_eq!(map.shard_of(16383).map(|s| s.primary.port()), Some(7001));

        let moved = map.with_slot_moved(5, &NodeAddr::new("127.0.0.1", 7001));
        assert_eq!(moved.shard_of(5).map(|s| s.primary.port()), Some(7001));
        assert_ne!(moved.hash(), map.hash());
        let elsewhere = map.with_slot_moved(6, &NodeAddr::new("127.0.0.1", 7009));
        assert_eq!(elsewhere.shard_of(6).map(|s| s.primary.port()), Some(7009));
    }

    #[test]
    fn garbage_never_panics() {
        for reply in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![bulk("slots"), Value::Int(3)])]),
            Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(99_999)])]),
        ] {
            let _ = SlotMap::from_shards(&reply, "h");
            let _ = SlotMap::from_slots(&reply, "h");
        }
    }
}
