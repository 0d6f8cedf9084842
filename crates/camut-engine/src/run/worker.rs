//! One worker thread: a QuickJS runtime hosting many VU contexts, driven by a
//! current-thread tokio runtime. Nothing here blocks; every VU is event driven.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use camut_stats::{StatsSet, WorkerHealth};

/// The longest timer delay, in ms (2^31 - 1, as in browsers and node).
pub(crate) const MAX_TIMER_MS: f64 = 2_147_483_647.0;
use rquickjs::function::This;
use rquickjs::{Ctx, Function, Persistent, Runtime, Value};
use tokio::sync::Notify;

use super::calls::PendingCalls;
use super::health::{thread_cpu_time, LAG_PROBE_PERIOD};
use super::timers::{Due, Timer, Timers};
use super::vu::{OpenIteration, Vu};
use super::{ConsoleLevel, Point, Shared, WorkerMsg};
use crate::campaign::RunLength;
use crate::http::HttpClient;
use crate::js::http::value_text;
use crate::js::scope::{install, VuIds};
use crate::js::{self, ScriptError};

/// Longest a single synchronous run of JS may take before it is interrupted:
/// it stalls every other VU of the worker meanwhile.
const MAX_SLICE: Duration = Duration::from_secs(10);
/// Most events handled before the driver yields to I/O.
const BATCH: usize = 256;

/// How an iteration ends.
enum End {
    Ok,
    Failed(ScriptError),
    TimedOut(ScriptError),
}

/// Bounds one synchronous run of JS without reading the clock on every entry: entering
/// JS only arms it; the interrupt handler (called by QuickJS every few thousand
/// operations) takes the start time on its first call and compares afterwards.
#[derive(Default)]
pub(crate) struct SliceClock {
    armed: Cell<bool>,
    deadline: Cell<Option<Instant>>,
    /// When the interrupt handler first saw the run's stop.
    stop_seen: Cell<Option<Instant>>,
}

impl SliceClock {
    pub(crate) fn begin(&self) {
        self.armed.set(true);
        self.deadline.set(None);
    }

    pub(crate) fn end(&self) {
        self.armed.set(false);
    }

    /// Whether a stop was asked for more than `grace` ago: then no JS may go on, so
    /// that a stop takes effect within its grace period whatever the test does.
    fn past_stop_grace(&self, stop: &super::StopHandle, grace: Duration) -> bool {
        if !stop.is_stopped() {
            return false;
        }
        let seen = self.stop_seen.get().unwrap_or_else(|| {
            let now = Instant::now();
            self.stop_seen.set(Some(now));
            now
        });
        seen.elapsed() > grace
    }

    /// The worker's loop took the stop at `at` (JS running meanwhile may see it later).
    fn stop_taken(&self, at: Instant) {
        if self.stop_seen.get().is_none() {
            self.stop_seen.set(Some(at));
        }
    }

    fn expired(&self, slice: Duration) -> bool {
        if !self.armed.get() {
            return false;
        }
        match self.deadline.get() {
            None => {
                self.deadline.set(Some(Instant::now() + slice));
                false
            }
            Some(t) => Instant::now() > t,
        }
    }
}

/// The open model's arrival schedule for this worker.
struct Arrivals {
    rate: f64,
    rampup: f64,
    /// Arrivals still to come (u64::MAX in duration mode).
    left: u64,
    next_k: u64,
    free: Vec<u32>,
}

impl Arrivals {
    /// Offset of arrival `k` from the start: rate ramps linearly from 0 over the rampup.
    fn offset(&self, k: u64) -> Duration {
        let (r, ramp, k) = (self.rate, self.rampup, k as f64);
        let s = if ramp > 0.0 && k < r * ramp / 2.0 {
            (2.0 * ramp * k / r).sqrt()
        } else if ramp > 0.0 {
            ramp + (k - r * ramp / 2.0) / r
        } else {
            k / r
        };
        // Arrivals past the longest run never come; capped so that start + offset holds.
        Duration::try_from_secs_f64(s)
            .unwrap_or(Duration::MAX)
            .min(2 * crate::campaign::options::MAX_DURATION)
    }
}

pub(crate) struct Worker {
    index: usize,
    pub(crate) shared: Arc<Shared>,
    // Field order matters for drop: VU handles and timers before the runtime.
    pub(crate) vus: RefCell<Vec<Vu>>,
    timers: RefCell<Timers>,
    ready: RefCell<VecDeque<u32>>,
    pub(crate) stats: RefCell<StatsSet>,
    arrivals: RefCell<Option<Arrivals>>,
    pub(crate) http: HttpClient,
    /// `camut.http` calls under way, by call id.
    pub(crate) calls: RefCell<PendingCalls>,
    /// Their exchanges on the wire, driven by one task.
    pub(crate) hops: super::hops::Hops,
    /// The operation this worker last had admitted under `maxOperations`.
    pub(crate) last_admitted: RefCell<Option<String>>,
    pub(crate) wake: Notify,
    pub(crate) inflight: Cell<usize>,
    open_iterations: Cell<usize>,
    active_vus: Cell<usize>,
    pending_starts: Cell<usize>,
    stopping: Cell<bool>,
    /// When the grace period of the stop (asked for, or the end of the duration) ends.
    grace_end: Cell<Option<Instant>>,
    /// The grace period is over: nothing of the test runs any more.
    cut: Cell<bool>,
    pub(crate) next_call_id: Cell<u64>,
    /// The VU whose JS is running: host functions are shared by all VUs of the worker.
    pub(crate) current: Cell<u32>,
    /// Host functions and frozen objects created once and shared by every VU context.
    pub(crate) shared_scope: RefCell<Option<crate::js::scope::SharedScope>>,
    /// Browser emulation's shared code, when the campaign asks for it.
    pub(crate) browser: RefCell<Option<crate::js::browser::BrowserShared>>,
    lag: RefCell<hdrhistogram::Histogram<u64>>,
    pub(crate) slice_clock: Rc<SliceClock>,
    start: Cell<Instant>,
    self_ref: RefCell<Weak<Worker>>,
    rt: Runtime,
}

/// Entry point of a worker thread.
pub(crate) fn run_worker(
    index: usize,
    shared: Arc<Shared>,
    tx: Sender<WorkerMsg>,
    gate: Arc<Barrier>,
    start_at: Arc<OnceLock<Instant>>,
) {
    let tokio_rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = tx.send(WorkerMsg::Ready {
                worker: index,
                result: Err(e.to_string()),
            });
            gate.wait();
            return;
        }
    };
    let worker = match Worker::new(index, shared) {
        Ok(w) => w,
        Err(e) => {
            let _ = tx.send(WorkerMsg::Ready {
                worker: index,
                result: Err(e),
            });
            gate.wait();
            return;
        }
    };
    let _ = tx.send(WorkerMsg::Ready {
        worker: index,
        result: Ok(()),
    });
    gate.wait();
    let start = *start_at
        .get()
        .expect("start time set before the gate opens");
    let cpu0 = thread_cpu_time();
    let local = tokio::task::LocalSet::new();
    local.block_on(&tokio_rt, worker.clone().drive(start, &tx));
    let wall = start.elapsed().as_secs_f64();
    let cpu = (thread_cpu_time() - cpu0).as_secs_f64();
    let lag = worker.lag.borrow();
    let health = WorkerHealth {
        cpu_s: cpu,
        cpu_utilization: if wall > 0.0 { cpu / wall } else { 0.0 },
        lag_p99_ms: lag.value_at_quantile(0.99) as f64 / 1000.0,
        lag_max_ms: lag.max() as f64 / 1000.0,
    };
    drop(lag);
    worker.flush_interval(&tx);
    let _ = tx.send(WorkerMsg::Done { health });
    worker.teardown();
    drop(local);
    drop(tokio_rt);
}

impl Worker {
    fn new(index: usize, shared: Arc<Shared>) -> Result<Rc<Worker>, String> {
        let rt = Runtime::new().map_err(|e| format!("cannot create a JavaScript runtime: {e}"))?;
        rt.set_memory_limit(shared.campaign.options.memory_limit);
        rt.set_max_stack_size(512 * 1024);
        let slice = shared.campaign.options.iteration_timeout.min(MAX_SLICE);
        let slice_clock = Rc::new(SliceClock::default());
        let clock = slice_clock.clone();
        let (stop, grace) = (shared.stop.clone(), shared.config.stop_grace);
        rt.set_interrupt_handler(Some(Box::new(move || {
            clock.expired(slice) || clock.past_stop_grace(&stop, grace)
        })));
        let worker = Rc::new(Worker {
            index,
            shared: shared.clone(),
            vus: RefCell::new(Vec::new()),
            timers: RefCell::new(Timers::default()),
            ready: RefCell::new(VecDeque::new()),
            stats: RefCell::new(StatsSet::default()),
            arrivals: RefCell::new(None),
            http: HttpClient::new(
                shared.campaign.options.http.tls.clone(),
                shared.open_connections.clone(),
            ),
            hops: Default::default(),
            last_admitted: RefCell::default(),
            calls: RefCell::new(PendingCalls::default()),
            wake: Notify::new(),
            inflight: Cell::new(0),
            open_iterations: Cell::new(0),
            active_vus: Cell::new(0),
            pending_starts: Cell::new(0),
            stopping: Cell::new(false),
            grace_end: Cell::new(None),
            cut: Cell::new(false),
            next_call_id: Cell::new(index as u64),
            current: Cell::new(0),
            shared_scope: RefCell::new(None),
            browser: RefCell::new(None),
            lag: RefCell::new(camut_stats::histogram()),
            slice_clock,
            start: Cell::new(Instant::now()),
            self_ref: RefCell::new(Weak::new()),
            rt,
        });
        *worker.self_ref.borrow_mut() = Rc::downgrade(&worker);
        super::done::set_worker(&worker);
        if let Some(b) = &shared.campaign.options.browser_emulation {
            *worker.browser.borrow_mut() =
                Some(crate::js::browser::BrowserShared::new(&worker.rt, b)?);
        }
        let weak = Rc::downgrade(&worker);
        let threads = shared.threads as u32;
        let remaining = match shared.length {
            RunLength::Iterations(n) if shared.campaign.options.arrival_rate.is_none() => n,
            _ => u64::MAX,
        };
        let file = shared.campaign.file.clone();
        let bytecode = shared.campaign.bytecode.clone();
        let mut index_in_drone = index as u32;
        while index_in_drone < shared.users {
            let slot = worker.vus.borrow().len() as u32;
            let ids = VuIds {
                id: shared.config.drone.index as u64 * shared.users as u64
                    + index_in_drone as u64
                    + 1,
                index: index_in_drone,
            };
            let ctx = js::vu_context(&worker.rt)
                .map_err(|e| format!("cannot create a VU context: {e}"))?;
            let mut vu = Vu {
                id: ids.id,
                ctx: ctx.clone(),
                test: None,
                window: None,
                vu_obj: None,
                remaining,
                seq: 0,
                open: None,
                finished: false,
                last_call: None,
                warned_done_twice: false,
                last_timed_out: 0,
                jar: None,
            };
            worker.slice_clock.begin();
            worker.current.set(slot);
            let setup = ctx.with(|ctx| -> Result<(), String> {
                let installed = install(&ctx, &weak, &ids)
                    .map_err(|e| ScriptError::catch(&ctx, e).to_string())?;
                let exports =
                    js::module::instantiate(&ctx, &file, &bytecode).map_err(|e| e.to_string())?;
                let test = exports.test.ok_or("no test function")?;
                vu.test = Some(Persistent::save(&ctx, test));
                vu.window = Some(Persistent::save(&ctx, installed.window));
                vu.vu_obj = Some(Persistent::save(&ctx, installed.vu));
                Ok(())
            });
            worker.slice_clock.end();
            if let Err(message) = setup {
                // This VU cannot run; the others can. Counted, not fatal.
                worker
                    .stats
                    .borrow_mut()
                    .error(&format!("VU {} setup failed: {message}", ids.id), None);
                vu.finished = true;
            } else {
                worker.active_vus.set(worker.active_vus.get() + 1);
            }
            worker.vus.borrow_mut().push(vu);
            index_in_drone += threads;
        }
        // Module evaluation leaves cycles behind in every VU; collect them before the run.
        worker.rt.run_gc();
        Ok(worker)
    }

    /// Whether the stop's grace period is over: no more of the test's code runs.
    pub(crate) fn is_cut(&self) -> bool {
        self.cut.get()
    }

    pub(crate) fn weak(&self) -> Weak<Worker> {
        self.self_ref.borrow().clone()
    }

    fn closed_model(&self) -> bool {
        self.shared.campaign.options.arrival_rate.is_none()
    }

    /// The worker's event loop: starts iterations, fires timers, sweeps timeouts,
    /// ships interval statistics, and ends when every VU is done.
    async fn drive(self: Rc<Self>, start: Instant, tx: &Sender<WorkerMsg>) {
        self.start.set(start);
        let opts = &self.shared.campaign.options;
        let end_at = match self.shared.length {
            RunLength::Duration(d) => Some(start + d),
            RunLength::Iterations(_) => None,
        };
        let users = self.shared.users as f64;
        let rampup = opts.rampup;
        if let Some(rate) = opts.arrival_rate {
            // This worker's share of the rate and of the iterations, by its share of the VUs.
            let n_vus = self.vus.borrow().len();
            let share = n_vus as f64 / users;
            let left = match self.shared.length {
                RunLength::Iterations(n) => {
                    let t = self.shared.threads as u64;
                    n / t + u64::from((self.index as u64) < n % t)
                }
                RunLength::Duration(_) => u64::MAX,
            };
            let free = (0..n_vus as u32)
                .rev()
                .filter(|&s| !self.vus.borrow()[s as usize].finished)
                .collect();
            *self.arrivals.borrow_mut() = Some(Arrivals {
                rate: rate * share,
                rampup: rampup.as_secs_f64(),
                left,
                next_k: 0,
                free,
            });
        } else {
            let vus = self.vus.borrow();
            let mut timers = self.timers.borrow_mut();
            for (slot, vu) in vus.iter().enumerate() {
                if vu.finished {
                    continue;
                }
                let at = start + rampup.mul_f64(vu_index(vu.id, &self.shared) as f64 / users);
                if at <= start {
                    self.ready.borrow_mut().push_back(slot as u32);
                } else {
                    timers.schedule(at, Due::VuStart(slot as u32));
                    self.pending_starts.set(self.pending_starts.get() + 1);
                }
            }
        }
        let probe = tokio::task::spawn_local(lag_probe(self.weak()));
        let hops = tokio::task::spawn_local(super::hops::drive(self.weak()));
        let interval = self.shared.config.interval;
        let sweep_every = (opts.iteration_timeout / 4)
            .clamp(Duration::from_millis(5), Duration::from_millis(100));
        let mut next_interval = start + interval;
        let mut next_sweep = start + sweep_every;
        loop {
            let now = Instant::now();
            if !self.stopping.get()
                && (self.shared.stop.is_stopped() || end_at.is_some_and(|e| now >= e))
            {
                self.begin_stop(now);
            }
            // Each source has a budget of its own per round, so that none starves the
            // others: iteration ends are served even while timers are always due.
            let mut handled = self.start_ready(BATCH);
            handled += self.fire_due(now, BATCH);
            handled += self.arrive(now);
            if self.grace_end.get().is_some_and(|g| now >= g) {
                self.cut_at_grace_end();
            }
            if now >= next_sweep {
                self.sweep_timeouts(now);
                next_sweep = now + sweep_every;
            }
            if now >= next_interval {
                self.flush_interval(tx);
                next_interval += interval;
            }
            if self.finished() {
                break;
            }
            if handled > 0 || !self.ready.borrow().is_empty() {
                tokio::task::yield_now().await;
                continue;
            }
            let mut wake_at = next_interval.min(next_sweep);
            if let Some(t) = self.timers.borrow().next_due() {
                wake_at = wake_at.min(t);
            }
            if let Some(t) = self.next_arrival() {
                wake_at = wake_at.min(t);
            }
            if let Some(e) = end_at.filter(|_| !self.stopping.get()) {
                wake_at = wake_at.min(e);
            }
            if let Some(g) = self.grace_end.get() {
                wake_at = wake_at.min(g);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at.into()) => {}
                _ = self.wake.notified() => {}
            }
        }
        probe.abort();
        hops.abort();
    }

    /// Starts up to `budget` iterations of VUs whose previous one ended.
    fn start_ready(&self, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            let next = self.ready.borrow_mut().pop_front();
            let Some(slot) = next else { break };
            n += 1;
            self.start_iteration(slot, None);
        }
        n
    }

    /// Fires up to `budget` timers and VU starts due by `now`.
    fn fire_due(&self, now: Instant, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            let due = self.timers.borrow_mut().pop_due(now);
            let Some((at, due)) = due else { break };
            n += 1;
            match due {
                // A VU start still queued after a stop: that VU was finished by the stop.
                Due::VuStart(_) if self.stopping.get() => {}
                Due::VuStart(slot) => {
                    self.pending_starts.set(self.pending_starts.get() - 1);
                    self.start_iteration(slot, Some(at));
                }
                Due::Timer(id) => self.fire_timer(id, now),
            }
        }
        n
    }

    /// The stop's grace period is over: open iterations end; what is left of the test
    /// (timers, calls in flight, whose callbacks no longer run) goes, so the run ends.
    fn cut_at_grace_end(&self) {
        self.grace_end.set(None);
        self.cut.set(true);
        self.sweep_timeouts(Instant::now());
        self.timers.borrow_mut().clear_timers();
        let calls: Vec<u64> = self.calls.borrow().keys().copied().collect();
        if !calls.is_empty() {
            tracing::warn!(
                worker = self.index,
                calls = calls.len(),
                "stop grace period over: aborting the calls still in flight"
            );
        }
        for id in calls {
            self.http_abort(id);
        }
    }

    fn finished(&self) -> bool {
        let arrivals_done = self
            .arrivals
            .borrow()
            .as_ref()
            .is_none_or(|a| a.left == 0 || self.stopping.get());
        let vus_done = if self.closed_model() {
            self.active_vus.get() == 0
        } else {
            arrivals_done
        };
        vus_done
            && self.pending_starts.get() == 0
            && self.open_iterations.get() == 0
            && self.inflight.get() == 0
            && self.ready.borrow().is_empty()
    }

    fn begin_stop(&self, now: Instant) {
        self.stopping.set(true);
        let grace = now + self.shared.config.stop_grace;
        self.grace_end.set(Some(grace));
        if self.shared.stop.is_stopped() {
            self.slice_clock.stop_taken(now);
        }
        for vu in self.vus.borrow_mut().iter_mut() {
            if let Some(o) = vu.open.as_mut() {
                o.deadline = o.deadline.min(grace);
            }
        }
        // VUs waiting for their rampup start will not start.
        let starts = self.pending_starts.replace(0);
        if starts > 0 {
            let mut vus = self.vus.borrow_mut();
            for vu in vus.iter_mut().filter(|v| v.seq == 0 && !v.finished) {
                vu.finished = true;
                self.active_vus.set(self.active_vus.get() - 1);
            }
        }
    }

    fn next_arrival(&self) -> Option<Instant> {
        let a = self.arrivals.borrow();
        let a = a.as_ref()?;
        (a.left > 0 && !self.stopping.get()).then(|| self.start.get() + a.offset(a.next_k))
    }

    /// Open model: starts every arrival due by `now`, or counts it as dropped.
    fn arrive(&self, now: Instant) -> usize {
        let mut n = 0;
        loop {
            if self.stopping.get() || n >= BATCH {
                return n;
            }
            let slot = {
                let mut a = self.arrivals.borrow_mut();
                let Some(a) = a.as_mut() else { return n };
                if a.left == 0 {
                    return n;
                }
                let at = self.start.get() + a.offset(a.next_k);
                if at > now {
                    return n;
                }
                a.next_k += 1;
                a.left -= 1;
                match a.free.pop() {
                    Some(slot) => Some((slot, at)),
                    None => {
                        self.stats.borrow_mut().iterations.dropped += 1;
                        None
                    }
                }
            };
            n += 1;
            if let Some((slot, at)) = slot {
                self.start_iteration(slot, Some(at));
            }
        }
    }

    /// Runs queued promise jobs (inside the current `ctx.with`).
    pub(crate) fn run_jobs(&self, ctx: &Ctx<'_>) {
        self.slice_clock.begin();
        while ctx.execute_pending_job() {}
        self.slice_clock.end();
        // Every entry into a VU's JS ends here.
        super::done::resume_panic();
    }

    /// Starts VU `slot`'s next iteration, meant to start at `intended` (now if `None`).
    fn start_iteration(&self, slot: u32, intended: Option<Instant>) {
        let now = Instant::now();
        let intended = intended.unwrap_or(now);
        let closed = self.closed_model();
        let stopping = self.stopping.get();
        let (ctx, test, window, vu_obj, seq) = {
            let mut vus = self.vus.borrow_mut();
            let vu = &mut vus[slot as usize];
            if vu.finished || vu.open.is_some() {
                return;
            }
            if closed && (stopping || vu.remaining == 0) {
                vu.finished = true;
                self.active_vus.set(self.active_vus.get() - 1);
                // Nothing of a VU that runs no more iterations may keep the worker busy.
                self.timers.borrow_mut().clear_vu(slot);
                return;
            }
            if closed && vu.remaining != u64::MAX {
                vu.remaining -= 1;
            }
            vu.seq += 1;
            let start_delay_us = if closed {
                0
            } else {
                now.saturating_duration_since(intended).as_micros() as u64
            };
            vu.open = Some(OpenIteration {
                seq: vu.seq,
                intended: if closed { now } else { intended },
                start_delay_us,
                deadline: now + self.shared.campaign.options.iteration_timeout,
            });
            (
                vu.ctx.clone(),
                vu.test.clone().expect("runnable VUs have a test"),
                vu.window.clone().expect("runnable VUs have a window"),
                vu.vu_obj.clone().expect("runnable VUs have camut.vu"),
                vu.seq,
            )
        };
        self.open_iterations.set(self.open_iterations.get() + 1);
        self.stats.borrow_mut().iterations.started += 1;
        self.current.set(slot);
        ctx.with(|ctx| {
            let outcome = (|| -> rquickjs::Result<Value> {
                let vu_obj = vu_obj.restore(&ctx)?;
                vu_obj.set("iteration", (seq - 1) as f64)?;
                let done = super::done::make(&ctx, slot, seq)?;
                let test = test.restore(&ctx)?;
                let window = window.restore(&ctx)?;
                self.slice_clock.begin();
                let r = test.call((This(window), done));
                self.slice_clock.end();
                r
            })();
            match outcome {
                Err(e) => {
                    let err = ScriptError::catch(&ctx, e);
                    self.script_error(slot, seq, err);
                }
                Ok(v) if v.is_promise() => {
                    if let Err(e) = self.follow_promise(&ctx, slot, seq, v) {
                        let err = ScriptError::catch(&ctx, e);
                        self.script_error(slot, seq, err);
                    }
                }
                Ok(_) => {}
            }
            self.run_jobs(&ctx);
        });
    }

    /// An async test: the iteration ends when its promise settles.
    fn follow_promise<'js>(
        &self,
        ctx: &Ctx<'js>,
        slot: u32,
        seq: u64,
        promise: Value<'js>,
    ) -> rquickjs::Result<()> {
        let obj = promise.into_object().expect("a promise is an object");
        let then: Function = obj.get("then")?;
        let w = self.weak();
        let on_ok = Function::new(ctx.clone(), move || {
            if let Some(w) = w.upgrade() {
                w.end_iteration(slot, seq, End::Ok);
            }
        })?;
        let w = self.weak();
        let on_err = Function::new(ctx.clone(), move |reason: Value<'js>| {
            if let Some(w) = w.upgrade() {
                w.script_error(slot, seq, ScriptError::from_value(reason));
            }
        })?;
        then.call::<_, Value>((This(obj), on_ok, on_err))?;
        Ok(())
    }

    /// `done()` of iteration `seq` of VU `slot`.
    pub(super) fn done_called(&self, slot: u32, seq: u64) {
        if self.end_iteration(slot, seq, End::Ok) {
            return;
        }
        let (late, warn, id) = {
            let mut vus = self.vus.borrow_mut();
            let vu = &mut vus[slot as usize];
            let late = vu.last_timed_out == seq;
            let warn = !late && !vu.warned_done_twice;
            if warn {
                vu.warned_done_twice = true;
            }
            (late, warn, vu.id)
        };
        if late {
            return;
        }
        self.stats.borrow_mut().iterations.done_twice += 1;
        if warn {
            tracing::warn!(
                vu = id,
                iteration = seq,
                "done() called more than once in one iteration; counted once"
            );
        }
    }

    /// An exception in code of iteration `seq`: counted; ends that iteration if still open.
    pub(crate) fn script_error(&self, slot: u32, seq: u64, err: ScriptError) {
        let err = err.explain_out_of_memory(self.shared.campaign.options.memory_limit);
        if !self.end_iteration(slot, seq, End::Failed(err.clone())) {
            // The iteration had already ended (paced tests): still an error.
            self.stats
                .borrow_mut()
                .error(&err.message, err.stack.as_deref());
        }
    }

    /// Ends iteration `seq` of VU `slot` if it is the open one; returns whether it was.
    fn end_iteration(&self, slot: u32, seq: u64, end: End) -> bool {
        let open = {
            let mut vus = self.vus.borrow_mut();
            let vu = &mut vus[slot as usize];
            match vu.open {
                Some(o) if o.seq == seq => {
                    vu.open = None;
                    if matches!(end, End::TimedOut(_)) {
                        vu.last_timed_out = seq;
                    }
                    o
                }
                _ => return false,
            }
        };
        self.open_iterations.set(self.open_iterations.get() - 1);
        {
            let mut stats = self.stats.borrow_mut();
            let us = open.intended.elapsed().as_micros() as u64;
            let _ = stats.iterations.duration.record(us.max(1));
            match end {
                End::Ok => stats.iterations.completed += 1,
                End::Failed(e) => {
                    stats.iterations.failed += 1;
                    stats.error(&e.message, e.stack.as_deref());
                }
                End::TimedOut(e) => {
                    stats.iterations.failed += 1;
                    stats.iterations.timed_out += 1;
                    stats.error(&e.message, e.stack.as_deref());
                }
            }
        }
        if self.closed_model() {
            self.ready.borrow_mut().push_back(slot);
        } else if let Some(a) = self.arrivals.borrow_mut().as_mut() {
            a.free.push(slot);
        }
        self.wake.notify_one();
        true
    }

    fn sweep_timeouts(&self, now: Instant) {
        let expired: Vec<(u32, u64)> = self
            .vus
            .borrow()
            .iter()
            .enumerate()
            .filter_map(|(slot, vu)| {
                vu.open
                    .filter(|o| o.deadline <= now)
                    .map(|o| (slot as u32, o.seq))
            })
            .collect();
        let timeout = self.shared.campaign.options.iteration_timeout;
        for (slot, seq) in expired {
            let message = if self.stopping.get() && self.shared.stop.is_stopped() {
                "iteration stopped: done() was not called within the stop grace period".to_string()
            } else {
                format!(
                    "iteration timed out: done() was not called within {:?} (iterationTimeout)",
                    timeout
                )
            };
            self.end_iteration(slot, seq, End::TimedOut(ScriptError::new(message)));
        }
    }

    fn flush_interval(&self, tx: &Sender<WorkerMsg>) {
        let mut delta = std::mem::take(&mut *self.stats.borrow_mut());
        let c = self.http.take_connections();
        delta.connections += c.opened;
        delta.connections_open = c.open;
        delta.connections_peak = c.peak;
        if !delta.is_empty() {
            let _ = tx.send(WorkerMsg::Interval {
                delta: Box::new(delta),
            });
        }
    }

    fn open_seq(&self, slot: u32) -> u64 {
        let vus = self.vus.borrow();
        let vu = &vus[slot as usize];
        vu.open.map_or(vu.seq, |o| o.seq)
    }

    // ---- host functions (called from JS) ----

    pub(crate) fn tsdb_call<'js>(
        &self,
        ctx: &Ctx<'js>,
        slot: u32,
        metric: Value<'js>,
        value: Value<'js>,
        tags: Option<Value<'js>>,
    ) -> rquickjs::Result<()> {
        let metric = metric
            .as_string()
            .and_then(|s| s.to_string().ok())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                rquickjs::Exception::throw_type(
                    ctx,
                    "camut.tsdb: the metric name must be a non-empty string",
                )
            })?;
        if let Err(e) = camut_tsdb::validate_metric(&metric) {
            return Err(rquickjs::Exception::throw_type(
                ctx,
                &format!("camut.tsdb: {e}"),
            ));
        }
        let value = value.as_number().filter(|v| v.is_finite()).ok_or_else(|| {
            rquickjs::Exception::throw_type(ctx, "camut.tsdb: the value must be a finite number")
        })?;
        let (vu_id, last) = {
            let vus = self.vus.borrow();
            let vu = &vus[slot as usize];
            (vu.id, vu.last_call.clone())
        };
        let mut point_tags = vec![
            (
                "campaign".to_string(),
                self.shared.campaign.options.id.clone(),
            ),
            ("client".to_string(), self.shared.config.drone.id.clone()),
            ("vu".to_string(), vu_id.to_string()),
        ];
        if let Some(l) = last {
            point_tags.push(("url".into(), l.url.to_string()));
            point_tags.push(("error".into(), l.failed.to_string()));
            point_tags.push(("callId".into(), l.call_id.to_string()));
        }
        if let Some(obj) = tags.as_ref().and_then(|t| t.as_object()) {
            for entry in obj.props::<String, Value>() {
                let (k, v) = entry?;
                let v = value_text(ctx, &v);
                match point_tags.iter_mut().find(|(key, _)| *key == k) {
                    Some(slot) => slot.1 = v,
                    None => point_tags.push((k, v)),
                }
            }
        }
        let timestamp_ms = camut_stats::clock::now_ms().max(0) as u64;
        self.shared.observer.point(Point {
            metric,
            timestamp_ms,
            value,
            tags: point_tags,
        });
        Ok(())
    }

    pub(crate) fn console_call<'js>(
        &self,
        ctx: &Ctx<'js>,
        slot: u32,
        level: ConsoleLevel,
        args: &[Value<'js>],
    ) {
        let text: Vec<String> = args.iter().map(|a| value_text(ctx, a)).collect();
        let id = self.vus.borrow()[slot as usize].id;
        self.shared.observer.console(id, level, &text.join(" "));
    }

    pub(crate) fn set_timer<'js>(
        &self,
        ctx: &Ctx<'js>,
        slot: u32,
        f: Value<'js>,
        ms: f64,
        args: Vec<Value<'js>>,
        repeat: bool,
    ) -> rquickjs::Result<u32> {
        let f = f.into_function().ok_or_else(|| {
            rquickjs::Exception::throw_type(
                ctx,
                "setTimeout/setInterval: the first argument must be a function",
            )
        })?;
        // As node does, a delay past 2^31 - 1 ms becomes 1 ms; one that is not a positive
        // number runs at the next turn.
        let ms = match ms {
            ms if ms > MAX_TIMER_MS => 1.0,
            ms if ms > 0.0 => ms,
            _ => 0.0,
        };
        let every = Duration::from_secs_f64(ms / 1000.0);
        let timer = Timer {
            vu: slot,
            iteration: self.open_seq(slot),
            func: Persistent::save(ctx, f),
            args: args.into_iter().map(|a| Persistent::save(ctx, a)).collect(),
            repeat: repeat.then_some(every.max(Duration::from_millis(1))),
        };
        let id = self.timers.borrow_mut().add(Instant::now() + every, timer);
        self.wake.notify_one();
        Ok(id)
    }

    pub(crate) fn clear_timer(&self, slot: u32, id: u32) {
        self.timers.borrow_mut().clear(slot, id);
    }

    fn fire_timer(&self, id: u32, now: Instant) {
        let fired = self.timers.borrow_mut().fire(id, now);
        let Some(super::timers::Fired {
            func,
            args,
            vu: slot,
            iteration: seq,
        }) = fired
        else {
            return;
        };
        let ctx = self.vus.borrow()[slot as usize].ctx.clone();
        self.current.set(slot);
        ctx.with(|ctx| {
            let r = (|| -> rquickjs::Result<()> {
                let f = func.restore(&ctx)?;
                let mut a = rquickjs::function::Args::new(ctx.clone(), args.len());
                for v in args {
                    a.push_arg(v.restore(&ctx)?)?;
                }
                self.slice_clock.begin();
                let r = f.call_arg::<Value>(a).map(|_| ());
                self.slice_clock.end();
                r
            })();
            if let Err(e) = r {
                let err = ScriptError::catch(&ctx, e);
                self.script_error(slot, seq, err);
            }
            self.run_jobs(&ctx);
        });
    }

    /// Drops every JS value before the runtime goes.
    fn teardown(&self) {
        self.hops.clear();
        self.timers.borrow_mut().clear_all();
        self.ready.borrow_mut().clear();
        self.shared_scope.borrow_mut().take();
        self.browser.borrow_mut().take();
        let mut vus = self.vus.borrow_mut();
        for vu in vus.iter_mut() {
            vu.test = None;
            vu.window = None;
            vu.vu_obj = None;
        }
        vus.clear();
        drop(vus);
        self.rt.run_gc();
    }
}

fn vu_index(id: u64, shared: &Shared) -> u64 {
    id - 1 - shared.config.drone.index as u64 * shared.users as u64
}

/// Measures how late the event loop wakes up (load-generator health).
async fn lag_probe(worker: Weak<Worker>) {
    loop {
        let expected = Instant::now() + LAG_PROBE_PERIOD;
        tokio::time::sleep_until(expected.into()).await;
        let lag = Instant::now()
            .saturating_duration_since(expected)
            .as_micros() as u64;
        let Some(w) = worker.upgrade() else { return };
        let _ = w.lag.borrow_mut().record(lag.max(1));
    }
}
