//! The `done` function handed to each iteration of a callback-style test.
//!
//! One is made per iteration, so that a late `done()` of an iteration that timed out
//! is told apart from the current one's. It is a QuickJS C function with its VU slot
//! and iteration number as data: made without the closure box, class lookup and
//! opaque cell of a general Rust function, a few percent of a worker's CPU at one
//! call per iteration.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use rquickjs::{qjs, Ctx, Function, Value};

use super::worker::Worker;

thread_local! {
    /// The worker of this thread (one per worker thread).
    static WORKER: RefCell<Weak<Worker>> = const { RefCell::new(Weak::new()) };
    /// A panic inside `done()`, carried past the C frames of QuickJS.
    static PANIC: RefCell<Option<Box<dyn Any + Send>>> = const { RefCell::new(None) };
}

/// Makes `w` the worker whose VUs this thread's `done` functions end.
pub(crate) fn set_worker(w: &Rc<Worker>) {
    WORKER.with(|cell| *cell.borrow_mut() = Rc::downgrade(w));
}

/// The `done` of iteration `seq` of VU `slot`.
pub(crate) fn make<'js>(ctx: &Ctx<'js>, slot: u32, seq: u64) -> rquickjs::Result<Function<'js>> {
    let mut data = [
        qjs::JS_MKVAL(qjs::JS_TAG_INT, slot as i32),
        qjs::JS_NewFloat64(seq as f64),
    ];
    // SAFETY: the context is alive (we run in it); the data values are numbers (no
    // references to take); the new function's reference passes to the `Value`.
    let f = unsafe {
        let raw = qjs::JS_NewCFunctionData(
            ctx.as_raw().as_ptr(),
            Some(call),
            0,
            0,
            data.len() as _,
            data.as_mut_ptr(),
        );
        Value::from_raw(ctx.clone(), raw)
    };
    f.into_function().ok_or(rquickjs::Error::Exception)
}

/// Re-raises on this thread a panic caught inside `done()`, once the JS that called
/// it has returned (a panic must not unwind through QuickJS's C frames).
pub(crate) fn resume_panic() {
    if let Some(p) = PANIC.with(|s| s.borrow_mut().take()) {
        resume_unwind(p);
    }
}

unsafe extern "C" fn call(
    ctx: *mut qjs::JSContext,
    _this: qjs::JSValue,
    _argc: std::ffi::c_int,
    _argv: *mut qjs::JSValue,
    _magic: std::ffi::c_int,
    data: *mut qjs::JSValue,
) -> qjs::JSValue {
    // SAFETY: `data` holds the two numbers `make` gave.
    let (slot, seq) = unsafe {
        let mut seq = 0.0;
        qjs::JS_ToFloat64(ctx, &mut seq, *data.add(1));
        (qjs::JS_VALUE_GET_INT(*data) as u32, seq as u64)
    };
    let ended = catch_unwind(AssertUnwindSafe(|| {
        if let Some(w) = WORKER.with(|cell| cell.borrow().upgrade()) {
            w.done_called(slot, seq);
        }
    }));
    match ended {
        Ok(()) => qjs::JS_UNDEFINED,
        Err(p) => {
            PANIC.with(|s| *s.borrow_mut() = Some(p));
            // SAFETY: a live context; the format string has no conversions.
            unsafe { qjs::JS_ThrowInternalError(ctx, c"camut: internal error in done()".as_ptr()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_caught_in_done_is_raised_again_after_the_js() {
        resume_panic(); // nothing caught: nothing happens
        PANIC.with(|s| *s.borrow_mut() = Some(Box::new("broken invariant")));
        let p = catch_unwind(resume_panic).unwrap_err();
        assert_eq!(p.downcast_ref::<&str>(), Some(&"broken invariant"));
        assert!(catch_unwind(resume_panic).is_ok(), "raised once");
    }
}
