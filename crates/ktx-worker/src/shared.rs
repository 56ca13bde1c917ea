//! [`SharedWorker`]: one [`Worker`] behind a bounded, serialized queue, for concurrent callers
//! (a daemon serving several requests). Calls run one at a time, in lock order; when
//! `queue_capacity` calls are already running or waiting, a new one returns `QueueFull` at
//! once, never blocking. Rejected calls are counted in the stats (as calls and errors) the next
//! time the worker is free.

use crate::config::ScriptRef;
use crate::outcome::{CallError, CallErrorKind, CallOutcome, CheckOutcome};
use crate::stats::WorkerStats;
use crate::worker::Worker;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A cloneable handle on one worker with a bounded queue (see the module docs).
#[derive(Clone)]
pub struct SharedWorker {
    inner: Arc<Inner>,
}

struct Inner {
    worker: Mutex<Worker>,
    /// Calls running or waiting for the worker.
    pending: AtomicUsize,
    capacity: usize,
    /// Script ids of calls refused while the worker was busy, not yet in its stats.
    rejected: Mutex<Vec<String>>,
}

/// Releases a queue slot when dropped (also when a call panics).
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SharedWorker {
    /// Share `worker`; its `queue_capacity` bounds the queue.
    pub fn new(worker: Worker) -> Self {
        let capacity = worker.config().queue_capacity.max(1);
        SharedWorker {
            inner: Arc::new(Inner {
                worker: Mutex::new(worker),
                pending: AtomicUsize::new(0),
                capacity,
                rejected: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Calls running or waiting now.
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::SeqCst)
    }

    fn admit(&self) -> Option<Slot<'_>> {
        let pending = &self.inner.pending;
        let mut current = pending.load(Ordering::SeqCst);
        loop {
            if current >= self.inner.capacity {
                return None;
            }
            match pending.compare_exchange(current, current + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(Slot(pending)),
                Err(now) => current = now,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Worker> {
        let mut worker = self
            .inner
            .worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let rejected = std::mem::take(
            &mut *self
                .inner
                .rejected
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for id in rejected {
            worker.record_outcome(&id, &self.queue_full(), false);
        }
        worker
    }

    fn queue_full(&self) -> CallOutcome {
        CallOutcome {
            result: Err(CallError::new(
                CallErrorKind::QueueFull,
                format!(
                    "the worker queue is full ({} calls running or waiting): try again later",
                    self.inner.capacity
                ),
            )),
            stdout: String::new(),
            stdout_truncated: false,
            latency: Duration::ZERO,
        }
    }

    fn reject(&self, script_id: &str) -> CallOutcome {
        if let Ok(mut r) = self.inner.rejected.lock() {
            r.push(script_id.to_string());
        }
        self.queue_full()
    }

    /// [`Worker::call`] through the queue.
    pub fn call(
        &self,
        script: &ScriptRef,
        context: &serde_json::Value,
        deadline: Duration,
    ) -> CallOutcome {
        let Some(_slot) = self.admit() else {
            return self.reject(&script.id);
        };
        self.lock().call(script, context, deadline)
    }

    /// [`Worker::call_many`] through the queue (the batch takes one slot).
    pub fn call_many(
        &self,
        calls: &[(ScriptRef, serde_json::Value, Duration)],
    ) -> Vec<CallOutcome> {
        let Some(_slot) = self.admit() else {
            return calls.iter().map(|(s, _, _)| self.reject(&s.id)).collect();
        };
        self.lock().call_many(calls)
    }

    /// [`Worker::check`] through the queue; a full queue is a check error.
    pub fn check(&self, script: &ScriptRef) -> CheckOutcome {
        let Some(_slot) = self.admit() else {
            return CheckOutcome {
                ok: false,
                entrypoint_found: false,
                errors: vec![crate::outcome::CheckError {
                    message: format!(
                        "the worker queue is full ({} calls running or waiting): try again later",
                        self.inner.capacity
                    ),
                    line: None,
                    col: None,
                }],
            };
        };
        self.lock().check(script)
    }

    /// A copy of the counters (waits for the running call).
    pub fn stats(&self) -> WorkerStats {
        self.lock().stats().clone()
    }
}
