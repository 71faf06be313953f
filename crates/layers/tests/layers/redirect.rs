//! RedirectLayer: MOVED, ASK, hop limit, loops, empty hosts, transactions,
//! and redirects inside RetryLayer.

use std::time::Duration;

use redis_resilience_core::{Error, ErrorKind, NodeAddr, Request, Route, Sent};
use redis_resilience_layers::{
    RedirectLayer, RedirectPolicy, RetryBudget, RetryLayer, RetryPolicy,
};
use tokio::time::Instant;
use tower::{Layer, ServiceBuilder};

use crate::common::{
    assert_no_request, assert_same_error, get, join, next, ok, pair, server, set, spawn,
};

fn node(port: u16) -> NodeAddr {
    NodeAddr::new("127.0.0.1", port)
}

fn moved(slot: u16, port: u16) -> Error {
    server(&format!("MOVED {slot} 127.0.0.1:{port}"))
}

fn ask(slot: u16, port: u16) -> Error {
    server(&format!("ASK {slot} 127.0.0.1:{port}"))
}

fn transaction() -> Request {
    let mut pipeline = redis::pipe();
    pipeline
        .atomic()
        .cmd("SET")
        .arg("{user:42}:name")
        .arg("x")
        .cmd("INCR")
        .arg("{user:42}:visits");
    Request::pipeline(pipeline)
}

/// Answers each request the mock gets with the next of `answers`
/// (`None` = success), and returns the routes it saw and the result.
async fn routes_for(
    layer: RedirectLayer,
    request: Request,
    answers: Vec<Option<Error>>,
) -> (Vec<Route>, Result<redis_resilience_core::Response, Error>) {
    let (mock, mut handle) = pair();
    let start = Instant::now();
    let task = spawn(layer.layer(mock), request);
    let mut routes = Vec::new();
    for answer in answers {
        let (request, reply, _) = next(&mut handle).await;
        routes.push(request.route().clone());
        match answer {
            None => reply.send_response(ok()),
            Some(error) => reply.send_error(error),
        }
    }
    let result = join(&mut handle, task).await;
    assert_no_request(&mut handle);
    // Redirects are followed at once, with no backoff.
    assert_eq!(start.elapsed(), Duration::ZERO);
    (routes, result)
}

#[tokio::test(start_paused = true)]
async fn moved_is_resent_to_the_named_node() {
    let (routes, result) = routes_for(
        RedirectLayer::new(),
        set(),
        vec![Some(moved(866, 7001)), None],
    )
    .await;
    assert_eq!(routes, [Route::Auto, Route::Node(node(7001))]);
    assert_eq!(result.expect("followed"), ok());
}

#[tokio::test(start_paused = true)]
async fn ask_is_resent_with_asking() {
    let (routes, result) = routes_for(
        RedirectLayer::new(),
        get(),
        vec![Some(ask(12182, 17100)), None],
    )
    .await;
    assert_eq!(routes, [Route::Auto, Route::Asking(node(17100))]);
    assert!(result.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_resent_request_is_the_same_command_with_its_deadline() {
    let (mock, mut handle) = pair();
    let deadline = Instant::now().into_std() + Duration::from_secs(1);
    let task = spawn(
        RedirectLayer::new().layer(mock),
        set().with_deadline(deadline),
    );
    let (_, reply, _) = next(&mut handle).await;
    reply.send_error(moved(866, 7001));
    let (request, reply, _) = next(&mut handle).await;
    assert_eq!(request.info().name(), "set");
    assert_eq!(request.deadline(), Some(deadline));
    assert_eq!(request.keys().collect::<Vec<_>>(), vec![&b"user:42"[..]]);
    reply.send_response(ok());
    assert!(join(&mut handle, task).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn other_errors_pass_through_unchanged() {
    let error = Error::timeout(Sent::Maybe);
    let (routes, result) = routes_for(RedirectLayer::new(), get(), vec![Some(error.clone())]).await;
    assert_eq!(routes, [Route::Auto]);
    assert_same_error(&result.expect_err("not a redirect"), &error);
}

#[tokio::test(start_paused = true)]
async fn hop_limit_stops_after_max_hops() {
    let layer = RedirectLayer::with_policy(RedirectPolicy::builder().max_hops(2).build());
    let (routes, result) = routes_for(
        layer,
        get(),
        vec![
            Some(moved(1, 7001)),
            Some(ask(1, 7002)),
            Some(moved(1, 7003)),
        ],
    )
    .await;
    assert_eq!(
        routes,
        [
            Route::Auto,
            Route::Node(node(7001)),
            Route::Asking(node(7002))
        ]
    );
    let error = result.expect_err("too many redirects");
    assert_eq!(
        error.kind(),
        &ErrorKind::Moved {
            slot: 1,
            addr: node(7003)
        }
    );
    assert!(error.message().starts_with("too many redirects"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn default_hop_limit_is_five() {
    // ASK to the same node is no loop: only the hop limit stops it.
    let answers = (0..6).map(|_| Some(ask(1, 7001))).collect();
    let (routes, result) = routes_for(RedirectLayer::new(), get(), answers).await;
    assert_eq!(routes.len(), 6);
    assert!(routes[1..].iter().all(|r| *r == Route::Asking(node(7001))));
    let error = result.expect_err("too many redirects");
    assert!(matches!(error.kind(), ErrorKind::Ask { .. }));
    assert!(error.message().contains("5 hops"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn moved_to_the_same_node_twice_in_a_row_is_a_loop() {
    let (routes, result) = routes_for(
        RedirectLayer::new(),
        get(),
        vec![Some(moved(5, 7001)), Some(moved(5, 7001))],
    )
    .await;
    assert_eq!(routes, [Route::Auto, Route::Node(node(7001))]);
    let error = result.expect_err("loop");
    assert!(error.message().starts_with("redirect loop"), "{error}");
    assert_eq!(
        error.kind(),
        &ErrorKind::Moved {
            slot: 5,
            addr: node(7001)
        }
    );
    assert_eq!(error.sent(), Sent::Yes);
}

#[tokio::test(start_paused = true)]
async fn moved_back_to_a_visited_node_is_a_loop() {
    let (routes, result) = routes_for(
        RedirectLayer::new(),
        get(),
        vec![
            Some(moved(5, 7001)),
            Some(moved(5, 7002)),
            Some(moved(5, 7001)),
        ],
    )
    .await;
    assert_eq!(
        routes,
        [
            Route::Auto,
            Route::Node(node(7001)),
            Route::Node(node(7002))
        ]
    );
    assert!(
        result
            .expect_err("loop")
            .message()
            .starts_with("redirect loop")
    );
}

#[tokio::test(start_paused = true)]
async fn empty_host_moved_takes_the_host_of_the_replying_node() {
    let request = get().with_route(Route::Node(NodeAddr::new("10.1.2.3", 7000)));
    let (routes, result) = routes_for(
        RedirectLayer::new(),
        request,
        vec![Some(server("MOVED 3999 :6381")), None],
    )
    .await;
    assert_eq!(
        routes,
        [
            Route::Node(NodeAddr::new("10.1.2.3", 7000)),
            Route::Node(NodeAddr::new("10.1.2.3", 6381)),
        ]
    );
    assert!(result.is_ok());
}

#[tokio::test(start_paused = true)]
async fn empty_host_moved_from_an_unknown_node_is_an_error() {
    let (routes, result) = routes_for(
        RedirectLayer::new(),
        get(),
        vec![Some(server("MOVED 3999 :6381"))],
    )
    .await;
    assert_eq!(routes, [Route::Auto]);
    let error = result.expect_err("host unknown");
    assert_eq!(
        error.kind(),
        &ErrorKind::Moved {
            slot: 3999,
            addr: NodeAddr::new("", 6381)
        }
    );
    assert!(error.message().starts_with("cannot follow"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn transaction_moved_is_resent_whole_to_the_new_node() {
    let (mock, mut handle) = pair();
    let task = spawn(RedirectLayer::new().layer(mock), transaction());
    let (first, reply, _) = next(&mut handle).await;
    assert_eq!(first.info().name(), "transaction");
    reply.send_error(moved(866, 7001));
    let (second, reply, _) = next(&mut handle).await;
    assert_eq!(second.info().name(), "transaction");
    assert_eq!(second.pipeline_parts().len(), 2);
    assert_eq!(second.route(), &Route::Node(node(7001)));
    reply.send_response(ok());
    assert!(join(&mut handle, task).await.is_ok());
    assert_no_request(&mut handle);
}

#[tokio::test(start_paused = true)]
async fn transaction_ask_is_resent_whole_with_asking() {
    let (routes, result) = routes_for(
        RedirectLayer::new(),
        transaction(),
        vec![Some(ask(866, 7002)), None],
    )
    .await;
    assert_eq!(routes, [Route::Auto, Route::Asking(node(7002))]);
    assert!(result.is_ok());
}

#[tokio::test(start_paused = true)]
async fn transaction_ask_can_be_refused() {
    let layer = RedirectLayer::with_policy(
        RedirectPolicy::builder()
            .follow_ask_in_transactions(false)
            .build(),
    );
    let (routes, result) =
        routes_for(layer.clone(), transaction(), vec![Some(ask(866, 7002))]).await;
    assert_eq!(routes, [Route::Auto]);
    let error = result.expect_err("refused");
    assert!(matches!(error.kind(), ErrorKind::Ask { slot: 866, .. }));
    assert!(
        error.message().starts_with("transaction not re-sent"),
        "{error}"
    );

    // Single commands still follow ASK.
    let (routes, result) = routes_for(layer, get(), vec![Some(ask(866, 7002)), None]).await;
    assert_eq!(routes, [Route::Auto, Route::Asking(node(7002))]);
    assert!(result.is_ok());
}

#[tokio::test(start_paused = true)]
async fn no_redirect_is_followed_past_the_deadline() {
    let (mock, mut handle) = pair();
    let deadline = Instant::now().into_std() + Duration::from_millis(5);
    let task = spawn(
        RedirectLayer::new().layer(mock),
        get().with_deadline(deadline),
    );
    let (_, reply, _) = next(&mut handle).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    reply.send_error(moved(1, 7001));
    let error = join(&mut handle, task).await.expect_err("deadline");
    assert_eq!(error.kind(), &ErrorKind::Timeout);
    assert_eq!(error.sent(), Sent::No);
    assert_no_request(&mut handle);
}

#[tokio::test(start_paused = true)]
async fn redirects_inside_retry_spend_no_attempt_and_no_budget() {
    let budget = RetryBudget::builder()
        .ratio(0.0)
        .min_per_second(0)
        .burst(1)
        .build();
    let retry = RetryLayer::new(
        RetryPolicy::builder()
            .max_attempts(2)
            .budget(budget)
            .seed(1)
            .build(),
    );
    let (mock, mut handle) = pair();
    let svc = ServiceBuilder::new()
        .layer(retry.clone())
        .layer(RedirectLayer::new())
        .service(mock);

    // Four redirects, then success: one attempt as far as Retry knows.
    let start = Instant::now();
    let task = spawn(svc.clone(), set());
    let mut routes = Vec::new();
    for answer in [
        Some(moved(1, 7001)),
        Some(ask(1, 7002)),
        Some(moved(1, 7003)),
        Some(ask(1, 7004)),
        None,
    ] {
        let (request, reply, _) = next(&mut handle).await;
        routes.push(request.route().clone());
        match answer {
            Some(error) => reply.send_error(error),
            None => reply.send_response(ok()),
        }
    }
    assert!(join(&mut handle, task).await.is_ok());
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "a redirect waited a backoff"
    );
    assert_eq!(
        routes,
        [
            Route::Auto,
            Route::Node(node(7001)),
            Route::Asking(node(7002)),
            Route::Node(node(7003)),
            Route::Asking(node(7004)),
        ]
    );
    assert_eq!(retry.available_retries(), 1, "redirects spent the budget");

    // A redirect loop is not retried, although the budget allows one.
    let task = spawn(svc.clone(), set());
    let (_, reply, _) = next(&mut handle).await;
    reply.send_error(moved(1, 7001));
    let (_, reply, _) = next(&mut handle).await;
    reply.send_error(moved(1, 7001));
    let error = join(&mut handle, task).await.expect_err("loop");
    assert!(error.message().starts_with("redirect loop"), "{error}");
    assert_no_request(&mut handle);
    assert_eq!(retry.available_retries(), 1);

    // The budget is still there for a real failure.
    let task = spawn(svc, set());
    let (_, reply, _) = next(&mut handle).await;
    reply.send_error(Error::connect("refused"));
    let (retried, reply, _) = next(&mut handle).await;
    assert_eq!(retried.route(), &Route::Auto);
    reply.send_response(ok());
    assert!(join(&mut handle, task).await.is_ok());
    assert_eq!(retry.available_retries(), 0);
    assert_no_request(&mut handle);
}
