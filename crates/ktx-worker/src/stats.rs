//! Counters per script: calls, errors, timeouts, restarts, and latency in an HDR histogram
//! (microseconds, 3 significant digits, 1 µs to 1 hour).

use crate::outcome::{CallErrorKind, CallOutcome};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One script's counters.
#[derive(Debug, Clone)]
pub struct ScriptStats {
    /// Calls made (every outcome, errors included; queue-full calls too).
    pub calls: u64,
    /// Calls without a result (every error kind, timeouts included).
    pub errors: u64,
    /// Calls that hit their deadline.
    pub timeouts: u64,
    /// Worker restarts this script's calls caused (timeouts, crashes, memory errors).
    pub restarts: u64,
    latency: Histogram<u64>,
}

impl Default for ScriptStats {
    fn default() -> Self {
        ScriptStats {
            calls: 0,
            errors: 0,
            timeouts: 0,
            restarts: 0,
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        }
    }
}

impl ScriptStats {
    /// The latency at `quantile` (0..=1) over every recorded call; zero before any.
    pub fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(quantile))
    }

    /// Median latency.
    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    /// 95th percentile latency.
    pub fn p95(&self) -> Duration {
        self.quantile(0.95)
    }

    /// The latency histogram (microseconds).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.latency
    }
}

/// Counters of every script a worker called, by script id.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    /// Per script id.
    pub scripts: BTreeMap<String, ScriptStats>,
    /// Worker processes started after the first (all scripts).
    pub restarts: u64,
}

impl WorkerStats {
    /// Record one outcome; `restarted` when it cost the worker its process.
    pub fn record(&mut self, script_id: &str, outcome: &CallOutcome, restarted: bool) {
        let s = self.scripts.entry(script_id.to_string()).or_default();
        s.calls += 1;
        if let Err(e) = &outcome.result {
            s.errors += 1;
            if e.kind == CallErrorKind::Timeout {
                s.timeouts += 1;
            }
        }
        if restarted {
            s.restarts += 1;
        }
        let micros = u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX);
        s.latency.saturating_record(micros.max(1));
    }

    /// A plain summary per script (for `--json` output and for keeping "the last run").
    pub fn summary(&self) -> Vec<ScriptSummary> {
        self.scripts
            .iter()
            .map(|(id, s)| ScriptSummary {
                id: id.clone(),
                calls: s.calls,
                errors: s.errors,
                timeouts: s.timeouts,
                restarts: s.restarts,
                p50_micros: s.p50().as_micros() as u64,
                p95_micros: s.p95().as_micros() as u64,
            })
            .collect()
    }
}

/// One script's counters as plain data (serialized in camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptSummary {
    /// The script id.
    pub id: String,
    /// See [`ScriptStats::calls`].
    pub calls: u64,
    /// See [`ScriptStats::errors`].
    pub errors: u64,
    /// See [`ScriptStats::timeouts`].
    pub timeouts: u64,
    /// See [`ScriptStats::restarts`].
    pub restarts: u64,
    /// Median latency, µs.
    pub p50_micros: u64,
    /// 95th percentile latency, µs.
    pub p95_micros: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::CallError;

    fn outcome(ms: u64, err: Option<CallErrorKind>) -> CallOutcome {
        CallOutcome {
            result: match err {
                None => Ok(serde_json::Value::Null),
                Some(k) => Err(CallError::new(k, "x")),
            },
            stdout: String::new(),
            stdout_truncated: false,
            latency: Duration::from_millis(ms),
        }
    }

    #[test]
    fn counts_and_quantiles() {
        let mut st = WorkerStats::default();
        for ms in 1..=100 {
            st.record("a", &outcome(ms, None), false);
        }
        st.record("a", &outcome(2000, Some(CallErrorKind::Timeout)), true);
        st.record("b", &outcome(1, Some(CallErrorKind::Raised)), false);
        let a = &st.scripts["a"];
        assert_eq!((a.calls, a.errors, a.timeouts, a.restarts), (101, 1, 1, 1));
        let p50 = a.p50().as_millis();
        assert!((50..=52).contains(&p50), "{p50}");
        assert!((95..=97).contains(&a.p95().as_millis()));
        let sum = st.summary();
        assert_eq!(sum.len(), 2);
        assert_eq!(
            (sum[1].id.as_str(), sum[1].errors, sum[1].timeouts),
            ("b", 1, 0)
        );
    }
}
