//! Mock tests of the layers, with paused time: every route, attempt and
//! backoff the inner service sees is asserted.

mod common;
mod redirect;
mod retry;
