//! Putting a [`Request`] on a multiplexed connection.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{RedisResult, Value};
use redis_resilience_core::{Command, Request};

/// Sends the request's command or pipeline; with `asking`, each command is
/// preceded by `ASKING` in the same write, so no other request on the shared
/// connection can consume the one-shot flag (DESIGN §4).
///
/// A single command's error reply is an `Err`. A pipeline's value is an array
/// of every reply, error replies included as values; a transaction's is an
/// array holding the `EXEC` reply, as redis-rs's own `Pipeline::query_async`
/// expects from `req_packed_commands`.
pub(crate) async fn send(
    con: &mut MultiplexedConnection,
    request: &Request,
    asking: bool,
) -> RedisResult<Value> {
    match (request.command(), asking) {
        // Error replies become errors (nested ones too, as redis-rs does for single commands).
        (Command::Single(cmd), false) => con.req_packed_command(cmd).await?.extract_error(),
        (Command::Single(cmd), true) => {
            let mut pipe = redis::pipe();
            pipe.cmd("ASKING").add_command(cmd.clone());
            let mut replies = con.req_packed_commands(&pipe, 1, 1).await?;
            replies.pop().unwrap_or(Value::Nil).extract_error()
        }
        (Command::Pipeline(pipe), false) => {
            let (offset, count) = if pipe.is_transaction() {
                (pipe.len() + 1, 1)
            } else {
                (0, pipe.len())
            };
            con.req_packed_commands(pipe, offset, count)
                .await
                .map(Value::Array)
        }
        (Command::Pipeline(pipe), true) => {
            let mut with_asking = redis::pipe();
            if pipe.is_transaction() {
                // ASKING before MULTI holds until EXEC: the server keeps the flag inside MULTI.
                with_asking.cmd("ASKING").cmd("MULTI");
                for cmd in pipe.cmd_iter() {
                    with_asking.add_command(cmd.clone());
                }
                with_asking.cmd("EXEC");
                let exec_at = pipe.len() + 2;
                con.req_packed_commands(&with_asking, exec_at, 1)
                    .await
                    .map(Value::Array)
            } else {
                for cmd in pipe.cmd_iter() {
                    with_asking.cmd("ASKING").add_command(cmd.clone());
                }
                let replies = con
                    .req_packed_commands(&with_asking, 0, with_asking.len())
                    .await?;
                Ok(Value::Array(
                    replies.into_iter().skip(1).step_by(2).collect(),
                ))
            }
        }
    }
}
