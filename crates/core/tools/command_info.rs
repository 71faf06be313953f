//! Reading a live server's `COMMAND` reply into table entries.
//!
//! Shared (by `#[path]`) between the table generator
//! (`examples/generate_command_table.rs`) and the drift test
//! (`tests/command_table_live.rs`), so both read the server the same way.

use redis::Value;
use redis_resilience_core::command::{
    BeginSearch, CommandFlags, CommandSpec, FindKeys, KeySpec, KeySpecFlags, RequestPolicy,
};

/// Every command and subcommand the server knows, sorted by name.
pub(crate) async fn fetch_commands(
    con: &mut redis::aio::MultiplexedConnection,
) -> Result<Vec<CommandSpec>, String> {
    let reply: Value = redis::cmd("COMMAND")
        .query_async(con)
        .await
        .map_err(|err| format!("COMMAND failed: {err}"))?;
    let mut specs = Vec::new();
    for entry in array(&reply, "COMMAND reply")? {
        parse_command(entry, &mut specs)?;
    }
    specs.sort_by(|a, b| a.name.cmp(b.name));
    Ok(specs)
}

/// The server's `redis_version`.
pub(crate) async fn server_version(
    con: &mut redis::aio::MultiplexedConnection,
) -> Result<String, String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(con)
        .await
        .map_err(|err| format!("INFO failed: {err}"))?;
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| "INFO server has no redis_version".to_owned())
}

fn parse_command(entry: &Value, out: &mut Vec<CommandSpec>) -> Result<(), String> {
    let fields = array(entry, "command entry")?;
    let field = |i: usize| {
        fields
            .get(i)
            .ok_or_else(|| format!("command entry has no field {i}"))
    };
    let name = text(field(0)?)?.to_ascii_lowercase();
    let mut flags = CommandFlags::EMPTY;
    for flag in array(field(2)?, "flags")? {
        let flag = text(flag)?;
        flags = flags.union(
            CommandFlags::from_name(&flag)
                .ok_or_else(|| format!("{name}: unknown flag {flag:?}: add it to CommandFlags"))?,
        );
    }
    let mut request_policy = RequestPolicy::Default;
    if let Some(tips) = fields.get(7) {
        for tip in array(tips, "tips")? {
            if let Some(policy) = text(tip)?.strip_prefix("request_policy:") {
                request_policy = RequestPolicy::from_tip(policy);
            }
        }
    }
    let key_specs = match fields.get(8) {
        Some(value) => array(value, "key specs")?
            .iter()
            .map(|spec| parse_key_spec(&name, spec))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let subcommands = match fields.get(9) {
        Some(value) => array(value, "subcommands")?.to_vec(),
        None => Vec::new(),
    };
    out.push(CommandSpec {
        name: leak(name),
        arity: int(field(1)?)?,
        flags,
        first_key: int(field(3)?)?,
        last_key: int(field(4)?)?,
        step: int(field(5)?)?,
        key_specs: Box::leak(key_specs.into_boxed_slice()),
        request_policy,
        has_subcommands: !subcommands.is_empty(),
    });
    for sub in &subcommands {
        parse_command(sub, out)?;
    }
    Ok(())
}

fn parse_key_spec(command: &str, spec: &Value) -> Result<KeySpec, String> {
    let spec = pairs(spec)?;
    let mut flags = 0u8;
    for flag in array(get(&spec, "flags")?, "key spec flags")? {
        flags |= match text(flag)?.as_str() {
            "not_key" => KeySpecFlags::NOT_KEY.bits(),
            "incomplete" => KeySpecFlags::INCOMPLETE.bits(),
            "variable_flags" => KeySpecFlags::VARIABLE_FLAGS.bits(),
            _ => 0,
        };
    }
    let begin = pairs(get(&spec, "begin_search")?)?;
    let begin_search = match text(get(&begin, "type")?)?.as_str() {
        "index" => BeginSearch::Index(int(get(&pairs(get(&begin, "spec")?)?, "index")?)?),
        "keyword" => {
            let inner = pairs(get(&begin, "spec")?)?;
            BeginSearch::Keyword {
                keyword: leak(text(get(&inner, "keyword")?)?),
                start_from: int(get(&inner, "startfrom")?)?,
            }
        }
        "unknown" => BeginSearch::Unknown,
        other => return Err(format!("{command}: unknown begin_search type {other:?}")),
    };
    let find = pairs(get(&spec, "find_keys")?)?;
    let find_keys = match text(get(&find, "type")?)?.as_str() {
        "range" => {
            let inner = pairs(get(&find, "spec")?)?;
            FindKeys::Range {
                last_key: int(get(&inner, "lastkey")?)?,
                step: int(get(&inner, "keystep")?)?,
                limit: int(get(&inner, "limit")?)?,
            }
        }
        "keynum" => {
            let inner = pairs(get(&find, "spec")?)?;
            FindKeys::KeyNum {
                key_num_index: int(get(&inner, "keynumidx")?)?,
                first_key: int(get(&inner, "firstkey")?)?,
                step: int(get(&inner, "keystep")?)?,
            }
        }
        "unknown" => FindKeys::Unknown,
        other => return Err(format!("{command}: unknown find_keys type {other:?}")),
    };
    Ok(KeySpec {
        flags: KeySpecFlags::from_bits(flags),
        begin_search,
        find_keys,
    })
}

/// Renders the table as Rust source.
pub(crate) fn render_table(version: &str, specs: &[CommandSpec]) -> String {
    let mut out = String::new();
    out.push_str(
        "// @generated by `cargo run -p redis-resilience-core --example generate_command_table`\n",
    );
    out.push_str(&format!(
        "// from the COMMAND reply of redis-server {version}. Do not edit by hand.\n\n"
    ));
    out.push_str("use super::spec::{\n    BeginSearch, CommandFlags, CommandSpec, FindKeys, KeySpec, KeySpecFlags, RequestPolicy,\n};\n\n");
    out.push_str(&format!("/// The server version the table was generated from.\npub const SERVER_VERSION: &str = {version:?};\n\n"));
    out.push_str("/// Every command and subcommand, sorted by name.\n#[rustfmt::skip]\npub(super) static COMMANDS: &[CommandSpec] = &[\n");
    for spec in specs {
        let flags: Vec<String> = spec
            .flags
            .names()
            .map(|name| format!("CommandFlags::{}", name.to_ascii_uppercase()))
            .collect();
        let flags = match flags.as_slice() {
            [] => "CommandFlags::EMPTY".to_owned(),
            [one] => one.clone(),
            [first, rest @ ..] => rest
                .iter()
                .fold(first.clone(), |acc, flag| format!("{acc}.union({flag})")),
        };
        out.push_str(&format!(
            "    CommandSpec {{\n        name: {:?},\n        arity: {},\n        flags: {flags},\n        first_key: {},\n        last_key: {},\n        step: {},\n        key_specs: &[",
            spec.name, spec.arity, spec.first_key, spec.last_key, spec.step
        ));
        for key_spec in spec.key_specs {
            let begin = match key_spec.begin_search {
                BeginSearch::Index(i) => format!("BeginSearch::Index({i})"),
                BeginSearch::Keyword {
                    keyword,
                    start_from,
                } => format!(
                    "BeginSearch::Keyword {{ keyword: {keyword:?}, start_from: {start_from} }}"
                ),
                BeginSearch::Unknown => "BeginSearch::Unknown".to_owned(),
            };
            let find = match key_spec.find_keys {
                FindKeys::Range {
                    last_key,
                    step,
                    limit,
                } => format!(
                    "FindKeys::Range {{ last_key: {last_key}, step: {step}, limit: {limit} }}"
                ),
                FindKeys::KeyNum {
                    key_num_index,
                    first_key,
                    step,
                } => format!(
                    "FindKeys::KeyNum {{ key_num_index: {key_num_index}, first_key: {first_key}, step: {step} }}"
                ),
                FindKeys::Unknown => "FindKeys::Unknown".to_owned(),
            };
            out.push_str(&format!(
                "\n            KeySpec {{ flags: KeySpecFlags::from_bits({}), begin_search: {begin}, find_keys: {find} }},",
                key_spec.flags.bits()
            ));
        }
        if !spec.key_specs.is_empty() {
            out.push_str("\n        ");
        }
        out.push_str(&format!(
            "],\n        request_policy: RequestPolicy::{:?},\n        has_subcommands: {},\n    }},\n",
            spec.request_policy, spec.has_subcommands
        ));
    }
    out.push_str("];\n");
    out
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn array<'a>(value: &'a Value, what: &str) -> Result<&'a [Value], String> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(format!("{what}: expected an array, got {other:?}")),
    }
}

fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::BulkString(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Ok(text.clone()),
        Value::Okay => Ok("OK".to_owned()),
        other => Err(format!("expected a string, got {other:?}")),
    }
}

fn int(value: &Value) -> Result<i32, String> {
    match value {
        Value::Int(n) => i32::try_from(*n).map_err(|_| format!("integer {n} out of range")),
        other => Err(format!("expected an integer, got {other:?}")),
    }
}

/// A RESP2 flat `[key, value, key, value…]` array or a RESP3 map, as pairs.
fn pairs(value: &Value) -> Result<Vec<(String, &Value)>, String> {
    match value {
        Value::Map(items) => items.iter().map(|(k, v)| Ok((text(k)?, v))).collect(),
        Value::Array(items) => items
            .chunks(2)
            .map(|pair| match pair {
                [k, v] => Ok((text(k)?, v)),
                _ => Err("odd-length key/value array".to_owned()),
            })
            .collect(),
        other => Err(format!("expected a map, got {other:?}")),
    }
}

fn get<'a>(pairs: &[(String, &'a Value)], key: &str) -> Result<&'a Value, String> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("missing field {key:?}"))
}
