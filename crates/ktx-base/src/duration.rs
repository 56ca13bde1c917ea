//! The one parser for "a number of seconds": `KTX_LOCK_TIMEOUT`, the daemon's timeouts.
//!
//! Accepted: a finite decimal number (`900`, `2.5`, ` 0 `), within the rule's bounds and small
//! enough for a [`Duration`]. Refused: anything else (`soon`, `nan`, `inf`, `-1`, `1e300`).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// The bounds a number of seconds must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds {
    /// Whether 0 is accepted (a lock timeout of 0: try once); otherwise it must be > 0.
    pub allow_zero: bool,
    /// The largest value accepted.
    pub max: Duration,
}

impl Seconds {
    /// 0 or more (up to what a [`Duration`] holds).
    pub const NON_NEGATIVE: Seconds = Seconds {
        allow_zero: true,
        max: Duration::MAX,
    };
    /// More than 0, at most 366 days: an idle or start timeout.
    pub const POSITIVE_UP_TO_A_YEAR: Seconds = Seconds {
        allow_zero: false,
        max: Duration::from_secs(366 * 86_400),
    };

    /// More than 0, at most a day: a query's execution timeout (`timeoutSeconds`).
    pub const POSITIVE_UP_TO_A_DAY: Seconds = Seconds {
        allow_zero: false,
        max: Duration::from_secs(86_400),
    };

    /// `text` (surrounding blanks ignored) as a duration within these bounds.
    pub fn parse(&self, text: &str) -> Option<Duration> {
        self.of(text.trim().parse().ok()?)
    }

    /// `secs` as a duration within these bounds (`None` for NaN, infinities, negatives, 0
    /// unless allowed, and anything over the maximum).
    pub fn of(&self, secs: f64) -> Option<Duration> {
        if !secs.is_finite() || secs < 0.0 || (secs == 0.0 && !self.allow_zero) {
            return None;
        }
        Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| *d <= self.max)
    }
}

/// What an environment variable holding seconds says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromEnv {
    /// Not set, or blank.
    Unset,
    /// A valid number of seconds.
    Valid(Duration),
    /// Set to something that is not a valid number of seconds (the raw value).
    Invalid(String),
}

/// Reads `name` as seconds under `rule`.
pub fn from_env(name: &str, rule: Seconds) -> FromEnv {
    let Some(raw) = std::env::var_os(name) else {
        return FromEnv::Unset;
    };
    let text = raw.to_string_lossy();
    if text.trim().is_empty() {
        return FromEnv::Unset;
    }
    match rule.parse(&text) {
        Some(d) => FromEnv::Valid(d),
        None => FromEnv::Invalid(text.into_owned()),
    }
}

/// Prints `message` on stderr the first time it is called for `key` in this process: a bad
/// setting read on every call is reported once, not once per call.
pub fn warn_once(key: &str, message: impl FnOnce() -> String) {
    static WARNED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let Ok(mut warned) = WARNED.lock() else {
        return;
    };
    if warned
        .get_or_insert_with(HashSet::new)
        .insert(key.to_string())
    {
        eprintln!("{}", message());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_negative_seconds() {
        let r = Seconds::NON_NEGATIVE;
        assert_eq!(r.parse("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(r.parse(" 0 "), Some(Duration::ZERO));
        assert_eq!(r.parse("600"), Some(Duration::from_secs(600)));
        assert_eq!(r.parse("1e3"), Some(Duration::from_secs(1000)));
        for bad in [
            "soon", "", " ", "-1", "-0.5", "nan", "NaN", "inf", "-inf", "1e300", "1s",
        ] {
            assert_eq!(r.parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn positive_seconds_up_to_a_year() {
        let r = Seconds::POSITIVE_UP_TO_A_YEAR;
        assert_eq!(r.parse("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(r.parse("900"), Some(Duration::from_secs(900)));
        assert_eq!(r.parse("31622400"), Some(Duration::from_secs(366 * 86_400)));
        for bad in ["0", "-0", "0.0", "31622400.5", "-3", "x", "inf", "nan"] {
            assert_eq!(r.parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn environment_values() {
        // A name no other test uses: the environment is process-wide.
        let name = "KTX_BASE_TEST_DURATION_SECONDS";
        std::env::remove_var(name);
        assert_eq!(from_env(name, Seconds::NON_NEGATIVE), FromEnv::Unset);
        std::env::set_var(name, "  ");
        assert_eq!(from_env(name, Seconds::NON_NEGATIVE), FromEnv::Unset);
        std::env::set_var(name, "1.5");
        assert_eq!(
            from_env(name, Seconds::NON_NEGATIVE),
            FromEnv::Valid(Duration::from_millis(1500))
        );
        std::env::set_var(name, "soon");
        assert_eq!(
            from_env(name, Seconds::NON_NEGATIVE),
            FromEnv::Invalid("soon".into())
        );
        std::env::remove_var(name);
    }

    #[test]
    fn warns_once_per_key() {
        let mut calls = 0;
        for _ in 0..3 {
            warn_once("ktx-base-test-key", || {
                calls += 1;
                "warning: test".into()
            });
        }
        assert_eq!(calls, 1);
    }
}
