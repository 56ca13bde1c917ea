//! [`Worker`]: one supervised worker process, its restarts within a budget, and its calls.
//!
//! A call writes one request frame, then waits for each reply with that call's own deadline.
//! When a deadline passes, the process group is killed at once and a replacement is started
//! right away (it boots while the caller handles the timeout); the calls of a batch after the
//! one that timed out or crashed are sent again to the replacement. Restarts are counted in a
//! sliding window: past `restart_budget` within `restart_window`, no new process is started and
//! calls fail fast with `Crashed` ("restart budget exhausted") until the oldest restart leaves
//! the window. That wait is the backoff: it never blocks the caller.

use crate::child::{Recv, WorkerProcess};
use crate::config::{ScriptRef, WorkerConfig};
use crate::outcome::{
    CallError, CallErrorKind, CallOutcome, CheckError, CheckOutcome, WorkerError,
};
use crate::protocol;
use crate::stats::WorkerStats;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a check may take (it parses and compiles, never runs the script).
const CHECK_DEADLINE: Duration = Duration::from_secs(10);

/// One supervised Python worker process (see the module docs).
pub struct Worker {
    cfg: WorkerConfig,
    process: Option<WorkerProcess>,
    restarts: VecDeque<Instant>,
    stats: WorkerStats,
    memory_limited: bool,
}

/// A call as the batch code handles it: borrowed script and context, and the deadline.
pub(crate) type CallRef<'a> = (&'a ScriptRef, &'a serde_json::Value, Duration);

/// How a call in a batch ended for the process.
enum Fate {
    /// The process lives on.
    Alive,
    /// The process is gone (killed, crashed, or exiting after a memory error).
    Lost,
}

impl Worker {
    /// Start the worker and wait until it is ready (a bad interpreter or a runtime without
    /// `ktx_worker` fails here, with the worker's stderr).
    pub fn spawn(cfg: WorkerConfig) -> Result<Worker, WorkerError> {
        let mut process = WorkerProcess::spawn(&cfg).map_err(|source| WorkerError::Spawn {
            python: cfg.python.clone(),
            source,
        })?;
        let memory_limited = await_ready(&mut process, cfg.start_timeout)
            .map_err(|detail| WorkerError::Start { detail })?;
        Ok(Worker {
            cfg,
            process: Some(process),
            restarts: VecDeque::new(),
            stats: WorkerStats::default(),
            memory_limited,
        })
    }

    /// Calls `entrypoint(context)` of the script's module, loaded once per content hash.
    pub fn call(
        &mut self,
        script: &ScriptRef,
        context: &serde_json::Value,
        deadline: Duration,
    ) -> CallOutcome {
        self.run_calls(&[(script, context, deadline)])
            .pop()
            .expect("one outcome per call")
    }

    /// Several calls in one request frame, each with its own deadline; one outcome per call,
    /// in order. Calls past `queue_capacity` are not run (`QueueFull`).
    pub fn call_many(
        &mut self,
        calls: &[(ScriptRef, serde_json::Value, Duration)],
    ) -> Vec<CallOutcome> {
        let calls: Vec<CallRef<'_>> = calls.iter().map(|(s, c, d)| (s, c, *d)).collect();
        self.run_calls(&calls)
    }

    fn run_calls(&mut self, calls: &[CallRef<'_>]) -> Vec<CallOutcome> {
        let capacity = self.cfg.queue_capacity.max(1);
        let run = &calls[..calls.len().min(capacity)];
        let mut out: Vec<CallOutcome> = Vec::with_capacity(calls.len());
        while out.len() < run.len() {
            let rest = &run[out.len()..];
            if let Err(e) = self.ensure_process() {
                for (script, _, _) in rest {
                    let outcome = failed(e.clone(), Duration::ZERO);
                    self.stats.record(&script.id, &outcome, false);
                    out.push(outcome);
                }
                break;
            }
            self.run_batch(rest, &mut out);
        }
        for (script, _, _) in &calls[run.len()..] {
            let outcome = failed(
                CallError::new(
                    CallErrorKind::QueueFull,
                    format!(
                        "the worker queue holds {capacity} calls: this one was not run (send fewer calls per batch)"
                    ),
                ),
                Duration::ZERO,
            );
            self.stats.record(&script.id, &outcome, false);
            out.push(outcome);
        }
        out
    }

    /// Sends `calls` to the live process and collects replies until one costs the process.
    fn run_batch(&mut self, calls: &[CallRef<'_>], out: &mut Vec<CallOutcome>) {
        let start_timeout = self.cfg.start_timeout;
        let mut started = Instant::now();
        let request = protocol::call_request(calls);
        if request.len() > crate::frame::MAX_FRAME {
            // Refused before anything is written: the process stays usable.
            for (script, _, _) in calls {
                let error = CallError::new(
                    CallErrorKind::BadResult,
                    format!(
                        "the request is {} bytes, over the {}-byte frame limit: pass a smaller context (or fewer calls per batch)",
                        request.len(),
                        crate::frame::MAX_FRAME
                    ),
                );
                let outcome = failed(error, Duration::ZERO);
                self.stats.record(&script.id, &outcome, false);
                out.push(outcome);
            }
            return;
        }
        let process = self.process.as_mut().expect("ensured");
        let sent = process
            .send(&request)
            .map_err(|e| format!("cannot write to the worker: {e}"));
        let ready = sent.and_then(|()| {
            if process.ready {
                Ok(())
            } else {
                let r = await_ready(process, start_timeout).map(|_| ());
                started = Instant::now();
                r
            }
        });
        if let Err(detail) = ready {
            let message = format!("{detail}; {}", process.reap_description());
            let outcome = failed(
                CallError::new(CallErrorKind::Crashed, message),
                started.elapsed(),
            );
            self.lose_process(&calls[0].0.id, outcome, out);
            return;
        }
        for (script, _, deadline) in calls {
            let (outcome, fate) = self.await_reply(*deadline, started);
            started = Instant::now();
            match fate {
                Fate::Alive => {
                    self.stats.record(&script.id, &outcome, false);
                    out.push(outcome);
                }
                Fate::Lost => {
                    self.lose_process(&script.id, outcome, out);
                    return;
                }
            }
        }
    }

    fn await_reply(&mut self, deadline: Duration, started: Instant) -> (CallOutcome, Fate) {
        let process = self.process.as_mut().expect("ensured");
        match process.recv(deadline.saturating_sub(started.elapsed())) {
            Recv::Frame(body) => match protocol::parse_reply(&body) {
                Ok(mut reply) => {
                    let outcome = CallOutcome {
                        result: reply.result(),
                        stdout: std::mem::take(&mut reply.stdout),
                        stdout_truncated: reply.stdout_truncated,
                        latency: started.elapsed(),
                    };
                    let fate = if reply.exiting {
                        process.kill();
                        Fate::Lost
                    } else {
                        Fate::Alive
                    };
                    (outcome, fate)
                }
                Err(message) => {
                    process.kill();
                    let error = CallError::new(CallErrorKind::Crashed, message);
                    (failed(error, started.elapsed()), Fate::Lost)
                }
            },
            Recv::Timeout => {
                let latency = started.elapsed();
                process.kill();
                let error = CallError::new(
                    CallErrorKind::Timeout,
                    format!(
                        "the script ran past its {} deadline; the worker was killed and restarts",
                        human(deadline)
                    ),
                );
                (failed(error, latency), Fate::Lost)
            }
            Recv::Closed(reason) => {
                let latency = started.elapsed();
                let message = format!(
                    "{reason} during the call: {} (the worker restarts)",
                    process.reap_description()
                );
                let error = CallError::new(CallErrorKind::Crashed, message);
                (failed(error, latency), Fate::Lost)
            }
        }
    }

    /// Record the outcome that cost the process, drop it and start a replacement now.
    fn lose_process(&mut self, script_id: &str, outcome: CallOutcome, out: &mut Vec<CallOutcome>) {
        self.stats.record(script_id, &outcome, true);
        out.push(outcome);
        self.process = None;
        // Start the replacement now so it boots while the caller handles this outcome; a
        // failure here shows up on the next call, from `ensure_process`.
        let _ = self.ensure_process();
    }

    /// A live process, starting one within the restart budget.
    fn ensure_process(&mut self) -> Result<(), CallError> {
        if self.process.is_some() {
            return Ok(());
        }
        let window = self.cfg.restart_window;
        while self.restarts.front().is_some_and(|t| t.elapsed() >= window) {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= self.cfg.restart_budget as usize {
            let retry = self
                .restarts
                .front()
                .map(|t| window.saturating_sub(t.elapsed()))
                .unwrap_or_default();
            return Err(CallError::new(
                CallErrorKind::Crashed,
                format!(
                    "restart budget exhausted: the worker restarted {} times within {}; it is started again in {} (fix the script that times out or crashes)",
                    self.restarts.len(),
                    human(window),
                    human(retry)
                ),
            ));
        }
        self.restarts.push_back(Instant::now());
        self.stats.restarts += 1;
        match WorkerProcess::spawn(&self.cfg) {
            Ok(p) => {
                self.process = Some(p);
                Ok(())
            }
            Err(e) => Err(CallError::new(
                CallErrorKind::Crashed,
                format!(
                    "cannot restart the worker with {}: {e}",
                    self.cfg.python.display()
                ),
            )),
        }
    }

    /// Syntax check and entrypoint discovery; the script's code is never run (see
    /// `ktx_worker/check.py`: the entrypoint is found as a top-level binding).
    pub fn check(&mut self, script: &ScriptRef) -> CheckOutcome {
        match self.try_check(script) {
            Ok(outcome) => outcome,
            Err(message) => CheckOutcome {
                ok: false,
                entrypoint_found: false,
                errors: vec![CheckError {
                    message,
                    line: None,
                    col: None,
                }],
            },
        }
    }

    fn try_check(&mut self, script: &ScriptRef) -> Result<CheckOutcome, String> {
        self.ensure_process().map_err(|e| e.message)?;
        let start_timeout = self.cfg.start_timeout;
        let process = self.process.as_mut().expect("ensured");
        let result = (|| {
            process
                .send(&protocol::check_request(script))
                .map_err(|e| format!("cannot write to the worker: {e}"))?;
            if !process.ready {
                await_ready(process, start_timeout)?;
            }
            match process.recv(CHECK_DEADLINE) {
                Recv::Frame(body) => protocol::parse_check(&body),
                Recv::Timeout => Err(format!(
                    "the check did not answer within {}",
                    human(CHECK_DEADLINE)
                )),
                Recv::Closed(reason) => Err(format!("{reason}: {}", process.reap_description())),
            }
        })();
        if result.is_err() {
            process.kill();
            self.process = None;
        }
        result
    }

    /// Count an outcome decided outside this worker (a call the shared queue refused).
    pub(crate) fn record_outcome(
        &mut self,
        script_id: &str,
        outcome: &CallOutcome,
        restarted: bool,
    ) {
        self.stats.record(script_id, outcome, restarted);
    }

    /// Counters per script id (and the worker's restarts).
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// The live worker process's pid, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(WorkerProcess::pid)
    }

    /// Whether the worker could set its memory limit (false on Windows, or when disabled).
    pub fn memory_limited(&self) -> bool {
        self.memory_limited
    }

    /// The configuration this worker was started with.
    pub fn config(&self) -> &WorkerConfig {
        &self.cfg
    }
}

/// Read the ready frame; `Ok(memory_limited)`.
fn await_ready(process: &mut WorkerProcess, timeout: Duration) -> Result<bool, String> {
    let ready = match process.recv(timeout) {
        Recv::Frame(body) => protocol::parse_ready(&body),
        Recv::Timeout => Err(format!("no ready frame within {}", human(timeout))),
        Recv::Closed(reason) => Err(reason),
    };
    match ready {
        Ok(r) => {
            process.ready = true;
            Ok(r.memory_limited)
        }
        Err(reason) => Err(format!("{reason}: {}", process.reap_description())),
    }
}

fn failed(error: CallError, latency: Duration) -> CallOutcome {
    CallOutcome {
        result: Err(error),
        stdout: String::new(),
        stdout_truncated: false,
        latency,
    }
}

/// `2 s`, `150 ms`.
fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{s:.0} s")
        } else {
            format!("{s:.1} s")
        }
    } else {
        format!("{} ms", d.as_millis())
    }
}
