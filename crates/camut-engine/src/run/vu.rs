//! A virtual user: its own QuickJS context and the state of its current iteration.

use std::time::Instant;

use rquickjs::{Context, Function, Object, Persistent};

use crate::http::cookies::CookieJar;

/// The iteration a VU is in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenIteration {
    /// 1-based sequence number of the iteration within this VU.
    pub seq: u64,
    /// When it was meant to start (open model) or started.
    pub intended: Instant,
    /// How late it started, in µs (open model: coordinated-omission correction).
    pub start_delay_us: u64,
    /// When it times out.
    pub deadline: Instant,
}

/// The last HTTP call of a VU, for the default tags of `camut.tsdb`.
#[derive(Debug, Clone, Default)]
pub(crate) struct LastCall {
    pub url: std::sync::Arc<str>,
    /// Whether it failed (false while it is in flight).
    pub failed: bool,
    pub call_id: u64,
}

pub(crate) struct Vu {
    /// 1-based id across the drone.
    pub id: u64,
    pub ctx: Context,
    pub test: Option<Persistent<Function<'static>>>,
    pub window: Option<Persistent<Object<'static>>>,
    pub vu_obj: Option<Persistent<Object<'static>>>,
    /// Iterations still to start (closed model with iterations).
    pub remaining: u64,
    /// Iterations started.
    pub seq: u64,
    pub open: Option<OpenIteration>,
    /// No more iterations will start.
    pub finished: bool,
    pub last_call: Option<LastCall>,
    pub warned_done_twice: bool,
    /// Sequence of the last iteration that timed out (a late done() is not "twice").
    pub last_timed_out: u64,
    /// Cookies kept across this VU's iterations (made on the first `Set-Cookie`).
    pub jar: Option<Box<CookieJar>>,
}
