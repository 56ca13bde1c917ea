//! Just enough PEP 440 to evaluate a `Requires-Python` specifier against an interpreter's
//! `X.Y.Z` release (operators `>= <= > < == != ~= ===`, `.*` wildcards).

/// One clause of a specifier set, e.g. `>=3.10`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    op: &'static str,
    release: Vec<u64>,
    wildcard: bool,
}

/// A parsed specifier set such as `>=3.10,<4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specifiers {
    text: String,
    clauses: Vec<Clause>,
}

/// Parses the leading release segment of a version (`3.11.7`, `3.13.0rc1` -> `[3, 13, 0]`).
pub fn parse_release(version: &str) -> Option<Vec<u64>> {
    let v = version.trim().trim_start_matches(['v', 'V']);
    let mut out = Vec::new();
    for part in v.split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            break;
        }
        out.push(digits.parse().ok()?);
        if digits.len() != part.len() {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

fn cmp_release(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x.cmp(&y);
        }
    }
    std::cmp::Ordering::Equal
}

impl Specifiers {
    /// Parses a comma-separated specifier set. An empty string matches everything.
    pub fn parse(text: &str) -> Result<Specifiers, String> {
        let mut clauses = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let op = ["===", "~=", "==", "!=", ">=", "<=", ">", "<"]
                .into_iter()
                .find(|op| raw.starts_with(op))
                .ok_or_else(|| format!("unsupported version specifier {raw:?} in {text:?}"))?;
            let rest = raw[op.len()..].trim();
            let (ver, wildcard) = match rest.strip_suffix(".*") {
                Some(v) => (v, true),
                None => (rest, false),
            };
            let release = parse_release(ver)
                .ok_or_else(|| format!("invalid version {rest:?} in {text:?}"))?;
            if op == "~=" && release.len() < 2 {
                return Err(format!(
                    "~= needs at least two release segments in {text:?}"
                ));
            }
            clauses.push(Clause {
                op,
                release,
                wildcard,
            });
        }
        Ok(Specifiers {
            text: text.trim().to_string(),
            clauses,
        })
    }

    /// Whether a release (e.g. `[3, 11, 7]`) satisfies every clause.
    pub fn contains(&self, v: &[u64]) -> bool {
        use std::cmp::Ordering::*;
        self.clauses.iter().all(|c| {
            let prefix_eq = || {
                c.release
                    .iter()
                    .enumerate()
                    .all(|(i, x)| v.get(i).copied().unwrap_or(0) == *x)
            };
            let ord = cmp_release(v, &c.release);
            match (c.op, c.wildcard) {
                ("==" | "===", true) => prefix_eq(),
                ("!=", true) => !prefix_eq(),
                ("==" | "===", false) => ord == Equal,
                ("!=", false) => ord != Equal,
                (">=", _) => ord != Less,
                ("<=", _) => ord != Greater,
                (">", _) => ord == Greater,
                ("<", _) => ord == Less,
                ("~=", _) => {
                    let prefix = &c.release[..c.release.len() - 1];
                    ord != Less
                        && prefix
                            .iter()
                            .enumerate()
                            .all(|(i, x)| v.get(i).copied().unwrap_or(0) == *x)
                }
                _ => false,
            }
        })
    }

    /// The original text, e.g. `>=3.10`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The SemVer that ktx's strict SemVer -> PEP 440 mapping turns into `pep440` (the inverse:
/// `X.Y.Z` -> same, `aN` -> `-alpha.N`, `bN` -> `-beta.N`, `rcN` -> `-rc.N`, `.devN` ->
/// `-dev.N`), or None when `pep440` is not such a version. Users see ktx's SemVer; the PEP 440
/// form is only for Python's tools (the wheel, the Python package's own version).
pub fn semver_of(pep440: &str) -> Option<String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (base, pre) = match pep440.split_once(".dev") {
        Some((base, n)) => (base, Some(("dev", n))),
        None => match pep440.find(|c: char| c.is_ascii_alphabetic()) {
            None => (pep440, None),
            Some(i) => {
                let (base, rest) = pep440.split_at(i);
                let pre = [("rc", "rc"), ("a", "alpha"), ("b", "beta")]
                    .into_iter()
                    .find_map(|(short, tag)| rest.strip_prefix(short).map(|n| (tag, n)))?;
                (base, Some(pre))
            }
        },
    };
    let parts: Vec<&str> = base.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| digits(p)) {
        return None;
    }
    match pre {
        None => Some(base.to_string()),
        Some((tag, n)) => digits(n).then(|| format!("{base}-{tag}.{n}")),
    }
}

/// `version` as users see it: its SemVer when it is the PEP 440 form of one, else unchanged.
pub fn display_version(version: &str) -> String {
    semver_of(version).unwrap_or_else(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specifiers() {
        let s = Specifiers::parse(">=3.10").unwrap();
        assert!(s.contains(&[3, 10, 0]));
        assert!(s.contains(&[3, 13, 1]));
        assert!(!s.contains(&[3, 9, 18]));
        let s = Specifiers::parse(">=3.10, <3.13").unwrap();
        assert!(!s.contains(&[3, 13, 0]));
        assert!(s.contains(&[3, 12, 9]));
        let s = Specifiers::parse("~=3.11").unwrap();
        assert!(s.contains(&[3, 12]) && !s.contains(&[4, 0]) && !s.contains(&[3, 10]));
        let s = Specifiers::parse("==3.11.*").unwrap();
        assert!(s.contains(&[3, 11, 4]) && !s.contains(&[3, 12, 0]));
        assert!(Specifiers::parse("").unwrap().contains(&[2, 7]));
        assert!(Specifiers::parse("python3").is_err());
        assert_eq!(parse_release("3.13.0rc1"), Some(vec![3, 13, 0]));
    }

    #[test]
    fn semver_of_inverts_the_release_mapping() {
        for (pep, semver) in [
            ("0.1.0rc0", "0.1.0-rc.0"),
            ("1.2.3", "1.2.3"),
            ("1.2.3a4", "1.2.3-alpha.4"),
            ("1.2.3b1", "1.2.3-beta.1"),
            ("1.2.3.dev7", "1.2.3-dev.7"),
        ] {
            assert_eq!(semver_of(pep).as_deref(), Some(semver), "{pep}");
        }
        for other in [
            "1.2",
            "1.2.3.4",
            "1.2.3post1",
            "1.2.3rc",
            "x.y.z",
            "",
            "1.2.3-rc.0",
        ] {
            assert_eq!(semver_of(other), None, "{other}");
        }
        assert_eq!(display_version("0.1.0rc0"), "0.1.0-rc.0");
        assert_eq!(display_version("weird"), "weird");
    }
}
