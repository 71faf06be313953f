//! RetryLayer: which errors are retried, backoff bounds, attempts, budget, deadline.

use std::time::Duration;

use redis_resilience_core::{Error, Request, Route, Sent};
use redis_resilience_layers::{RetryBudget, RetryLayer, RetryPolicy};
use tokio::time::Instant;
use tower::Layer;

use crate::common::{
    assert_no_request, assert_same_error, get, incr, join, next, ok, pair, server, set, spawn,
};

fn policy() -> RetryPolicy {
    RetryPolicy::builder().seed(42).build()
}

/// Sends `request`, answers its first attempt with `error`, and returns the
/// number of attempts the mock saw (answering a retry with success) and the
/// result.
async fn attempts_after(
    policy: RetryPolicy,
    request: Request,
    error: Error,
) -> (usize, Result<redis_resilience_core::Response, Error>) {
    let (mock, mut handle) = pair();
    let svc = RetryLayer::new(policy).layer(mock);
    let mut task = spawn(svc, request);
    let (_, reply, _) = next(&mut handle).await;
    reply.send_error(error);
    tokio::select! {
        biased;
        result = &mut task => return (1, result.expect("the request task panicked")),
        retry = handle.next_request() => {
            let (_, reply) = retry.expect("a retry");
            reply.send_response(ok());
        }
    }
    let result = join(&mut handle, task).await;
    assert_no_request(&mut handle);
    (2, result)
}

#[tokio::test(start_paused = true)]
async fn sent_no_retries_any_command() {
    let (mock, mut handle) = pair();
    let svc = RetryLayer::new(policy()).layer(mock);
    let task = spawn(svc, incr());

    let (first, reply, _) = next(&mut handle).await;
    assert_eq!(first.route(), &Route::Auto);
    reply.send_error(Error::connect("connection refused"));
    let (second, reply, _) = next(&mut handle).await;
    assert_eq!(second.route(), &Route::Auto);
    assert_eq!(second.info().name(), "incr");
    reply.send_response(ok());

    assert_eq!(
        join(&mut handle, task).await.expect("success after retry"),
        ok()
    );
    assert_no_request(&mut handle);
}

#[tokio::test(start_paused = true)]
async fn sent_maybe_retries_idempotent_get() {
    let (attempts, result) = attempts_after(policy(), get(), Error::timeout(Sent::Maybe)).await;
    assert_eq!(attempts, 2);
    assert!(result.is_ok());
}

#[tokio::test(start_paused = true)]
async fn sent_maybe_does_not_retry_incr() {
    let error = Error::timeout(Sent::Maybe);
    let (attempts, result) = attempts_after(policy(), incr(), error.clone()).await;
    assert_eq!(attempts, 1);
    assert_same_error(&result.expect_err("not retried"), &error);

    let lost = Error::io(Sent::Maybe, "connection reset after write");
    let (attempts, result) = attempts_after(policy(), incr(), lost.clone()).await;
    assert_eq!(attempts, 1);
    assert_same_error(&result.expect_err("not retried"), &lost);
}

#[tokio::test(start_paused = true)]
async fn transient_server_states_are_retried_after_backoff() {
    for reply_text in [
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "LOADING Redis is loading the dataset in memory",
        "CLUSTERDOWN The cluster is down",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    ] {
        let (mock, mut handle) = pair();
        // A wide backoff, so that a retry sent at once would show.
        let policy = RetryPolicy::builder()
            .base_delay(Duration::from_secs(1))
            .seed(7)
            .build();
        let svc = RetryLayer::new(policy).layer(mock);
        // INCR is not idempotent: these answers say it did not run.
        let task = spawn(svc, incr());
        let (_, reply, _) = next(&mut handle).await;
        let error = server(reply_text);
        assert!(error.kind().is_transient_server_state(), "{reply_text}");
        reply.send_error(error);
        let (_, reply, waited) = next(&mut handle).await;
        assert!(
            waited > Duration::ZERO,
            "{reply_text}: retried without backoff"
        );
        assert!(
            waited <= Duration::from_millis(1001),
            "{reply_text}: waited {waited:?}"
        );
        reply.send_response(ok());
        assert!(join(&mut handle, task).await.is_ok(), "{reply_text}");
    }
}

#[tokio::test(start_paused = true)]
async fn readonly_is_retried_after_backoff() {
    let (mock, mut handle) = pair();
    let policy = RetryPolicy::builder()
        .base_delay(Duration::from_secs(1))
        .seed(3)
        .build();
    let svc = RetryLayer::new(policy).layer(mock);
    let task = spawn(svc, incr());
    let (_, reply, _) = next(&mut handle).await;
    reply.send_error(server(
        "READONLY You can't write against a read only replica.",
    ));
    let (_, reply, waited) = next(&mut handle).await;
    assert!(waited > Duration::ZERO);
    reply.send_response(ok());
    assert!(join(&mut handle, task).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn load_shedding_semantic_errors_and_redirects_are_never_retried() {
    let errors = [
        Error::circuit_open(Duration::from_secs(1)),
        Error::rate_limited(Duration::from_millis(10)),
        server("WRONGTYPE Operation against a key holding the wrong kind of value"),
        server("NOSCRIPT No matching script. Please use EVAL."),
        server("OOM command not allowed when used memory > 'maxmemory'."),
        server("ERR unknown command 'FOO'"),
        server("NOAUTH Authentication required."),
        server("CROSSSLOT Keys in request don't hash to the same slot"),
        server("MOVED 12182 127.0.0.1:17102"),
        server("ASK 12182 127.0.0.1:17100"),
        Error::cross_slot(),
        Error::config("bad url"),
    ];
    for error in errors {
        // GET is idempotent, and still not retried.
        let (attempts, result) = attempts_after(policy(), get(), error.clone()).await;
        assert_eq!(attempts, 1, "{error} was retried");
        assert_same_error(&result.expect_err("not retried"), &error);
    }
}

#[tokio::test(start_paused = true)]
async fn no_retry_requests_are_not_retried() {
    let error = Error::connect("connection refused");
    let (attempts, result) = attempts_after(policy(), get().no_retry(), error.clone()).await;
    assert_eq!(attempts, 1);
    assert_same_error(&result.expect_err("not retried"), &error);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_bounds_the_attempts_and_returns_the_last_error() {
    let (mock, mut handle) = pair();
    let svc = RetryLayer::new(RetryPolicy::builder().max_attempts(3).seed(1).build()).layer(mock);
    let task = spawn(svc, set());
    for attempt in 1..=3 {
        let (_, reply, _) = next(&mut handle).await;
        reply.send_error(Error::connect(format!("refused {attempt}")));
    }
    let error = join(&mut handle, task).await.expect_err("attempts used up");
    assert_eq!(error.message(), "refused 3");
    assert_no_request(&mut handle);
}

#[tokio::test(start_paused = true)]
async fn backoff_stays_within_full_jitter_bounds() {
    let base = Duration::from_millis(10);
    let cap = Duration::from_millis(25);
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .base_delay(base)
        .max_delay(cap)
        .budget(RetryBudget::unlimited())
        .seed(42)
        .build();
    let layer = RetryLayer::new(policy.clone());
    // Paused time advances to the timer wheel's next millisecond.
    let tick = Duration::from_millis(1);
    let mut waits: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    for _ in 0..40 {
        let (mock, mut handle) = pair();
        let task = spawn(layer.layer(mock), get());
        let (_, reply, _) = next(&mut handle).await;
        reply.send_error(Error::connect("refused"));
        for (retry, waits) in waits.iter_mut().enumerate() {
            let (_, reply, waited) = next(&mut handle).await;
            waits.push(waited);
            if retry == 3 {
                reply.send_response(ok());
            } else {
                reply.send_error(Error::connect("refused"));
            }
        }
        assert!(join(&mut handle, task).await.is_ok());
    }
    for (retry, waits) in waits.iter().enumerate() {
        let ceiling = policy.backoff_ceiling(u32::try_from(retry).expect("small"));
        assert_eq!(
            ceiling,
            (base * 2_u32.pow(u32::try_from(retry).expect("small"))).min(cap)
        );
        let longest = waits.iter().max().copied().unwrap_or_default();
        let shortest = waits.iter().min().copied().unwrap_or_default();
        assert!(
            longest <= ceiling + tick,
            "retry {retry}: waited {longest:?} > {ceiling:?}"
        );
        // Jitter: spread over the range, not the ceiling every time.
        assert!(
            shortest < ceiling / 3,
            "retry {retry}: never shorter than {shortest:?}"
        );
        assert!(
            longest > ceiling * 2 / 3,
            "retry {retry}: never longer than {longest:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_waits_for_the_inner_service_to_be_ready() {
    let (mock, mut handle) = pair();
    let svc = RetryLayer::new(policy()).layer(mock);
    let task = spawn(svc, get());
    let (_, reply, _) = next(&mut handle).await;
    handle.allow(0);
    reply.send_error(Error::connect("refused"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_no_request(&mut handle);
    assert!(!task.is_finished());
    handle.allow(1);
    let (_, reply, _) = next(&mut handle).await;
    reply.send_response(ok());
    assert!(join(&mut handle, task).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn spent_budget_across_clones_and_services_returns_the_original_error() {
    let budget = RetryBudget::builder()
        .ratio(0.0)
        .min_per_second(0)
        .burst(1)
        .build();
    let layer = RetryLayer::new(RetryPolicy::builder().budget(budget).seed(5).build());
    assert_eq!(layer.available_retries(), 1);

    // One route spends the only retry.
    let (mock_a, mut handle_a) = pair();
    let task = spawn(layer.layer(mock_a), get());
    let (_, reply, _) = next(&mut handle_a).await;
    reply.send_error(Error::connect("refused on a"));
    let (_, reply, _) = next(&mut handle_a).await;
    reply.send_response(ok());
    assert!(join(&mut handle_a, task).await.is_ok());
    assert_eq!(layer.available_retries(), 0);

    // Another route, through a clone of the layer, finds the budget spent.
    let (mock_b, mut handle_b) = pair();
    let svc_b = layer.clone().layer(mock_b);
    let task = spawn(svc_b.clone(), get());
    let (_, reply, _) = next(&mut handle_b).await;
    let error = Error::connect("refused on b");
    reply.send_error(error.clone());
    assert_same_error(
        &join(&mut handle_b, task).await.expect_err("budget spent"),
        &error,
    );
    assert_no_request(&mut handle_b);
}

#[tokio::test(start_paused = true)]
async fn budget_earns_a_share_of_requests() {
    let budget = RetryBudget::builder()
        .ratio(0.5)
        .min_per_second(0)
        .burst(0)
        .build();
    let policy = RetryPolicy::builder().budget(budget).seed(9).build();
    let layer = RetryLayer::new(policy);

    // First request: half a retry earned, not enough.
    let (mock, mut handle) = pair();
    let task = spawn(layer.layer(mock), get());
    let (_, reply, _) = next(&mut handle).await;
    reply.send_error(Error::connect("refused"));
    assert!(join(&mut handle, task).await.is_err());
    assert_no_request(&mut handle);

    // Second request: a whole retry.
    let (mock, mut handle) = pair();
    let task = spawn(layer.layer(mock), get());
    let (_, reply, _) = next(&mut handle).await;
    reply.send_error(Error::connect("refused"));
    let (_, reply, _) = next(&mut handle).await;
    reply.send_response(ok());
    assert!(join(&mut handle, task).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn budget_floor_refills_per_second() {
    let budget = RetryBudget::builder()
        .ratio(0.0)
        .min_per_second(1)
        .burst(1)
        .build();
    let layer = RetryLayer::new(RetryPolicy::builder().budget(budget).seed(11).build());
    let mut retried = Vec::new();
    for pause in [0, 0, 1000] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let (mock, mut handle) = pair();
        let mut task = spawn(layer.layer(mock), get());
        let (_, reply, _) = next(&mut handle).await;
        reply.send_error(Error::connect("refused"));
        tokio::select! {
            biased;
            result = &mut task => {
                assert!(result.expect("the request task panicked").is_err());
                retried.push(false);
                continue;
            }
            retry = handle.next_request() => {
                let (_, reply) = retry.expect("a retry");
                reply.send_response(ok());
                retried.push(true);
            }
        }
        assert!(join(&mut handle, task).await.is_ok());
    }
    assert_eq!(retried, [true, false, true]);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_already_reached_returns_at_once() {
    let (mock, mut handle) = pair();
    let svc = RetryLayer::new(policy()).layer(mock);
    let deadline = Instant::now().into_std() + Duration::from_millis(5);
    let task = spawn(svc, get().with_deadline(deadline));
    // The attempt takes until the deadline.
    let (_, reply, _) = next(&mut handle).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let start = Instant::now();
    let error = Error::connect("refused");
    reply.send_error(error.clone());
    assert_same_error(
        &join(&mut handle, task).await.expect_err("no time left"),
        &error,
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_no_request(&mut handle);
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_that_cannot_finish_before_the_deadline() {
    // Backoffs are drawn from [0, 10 ms]; the deadline is 6 ms away.
    let policy = RetryPolicy::builder()
        .budget(RetryBudget::unlimited())
        .seed(42)
        .build();
    let layer = RetryLayer::new(policy);
    let (mut retried, mut returned_at_once) = (0, 0);
    for _ in 0..40 {
        let (mock, mut handle) = pair();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(6);
        let mut task = spawn(layer.layer(mock), get().with_deadline(deadline.into_std()));
        let (_, reply, _) = next(&mut handle).await;
        let error = Error::connect("refused");
        reply.send_error(error.clone());
        tokio::select! {
            biased;
            result = &mut task => {
                let result = result.expect("the request task panicked");
                assert_same_error(&result.expect_err("gave up"), &error);
                assert!(Instant::now() <= deadline, "slept past the deadline");
                if Instant::now() == start {
                    returned_at_once += 1;
                }
                continue;
            }
            retry = handle.next_request() => {
                assert!(Instant::now() < deadline, "a retry started at the deadline");
                let (_, reply) = retry.expect("a retry");
                reply.send_response(ok());
                retried += 1;
            }
        }
        assert!(join(&mut handle, task).await.is_ok());
    }
    assert!(retried > 0, "no backoff was short enough to retry");
    assert!(
        returned_at_once > 0,
        "no backoff was too long for the deadline"
    );
}
