//! Pure parsers for what the installed `ktx` prints (no processes here, so every rule the smoke
//! asserts is unit-tested): `ktx runtime start`, `ktx runtime doctor`, `ktx sl query
//! --format json`, the queries `ktx demo` prints, `ktx embed --json`, and the daemon's access log.

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

// The stable sentences are defined once, in `ktx_runtime::messages`, which the CLI prints:
// `STARTED` / `REUSED` (the first line of `ktx runtime start` when it spawned a daemon / one
// was already running), `STOPPED` (`ktx runtime stop`), `READY` (the end of a lazy install).
pub use ktx_runtime::messages::{
    DAEMON_REUSED as REUSED, DAEMON_STARTED as STARTED, DAEMON_STOPPED as STOPPED,
    RUNTIME_READY as READY,
};

/// `Installing KTX Python runtime (core) with uv...`: the start of a lazy `core` install.
pub fn installing_core_with_uv() -> String {
    ktx_runtime::messages::installing("core", "uv")
}

/// What `ktx runtime start` printed on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonStart {
    /// `true` for [`REUSED`], `false` for [`STARTED`].
    pub reused: bool,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The daemon's pid.
    pub pid: u32,
    /// The Python package version it runs.
    pub version: String,
    /// The features it serves, in printed order.
    pub features: Vec<String>,
}

/// The value of the first `key: value` line of `text` (the key at the start of the line).
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

/// Parses `ktx runtime start` stdout: a [`STARTED`] or [`REUSED`] line, then `url:`
/// (`http://127.0.0.1:<port>`), `pid:`, `version:` and `features:` lines.
pub fn daemon_start(stdout: &str) -> Result<DaemonStart> {
    let first = stdout.lines().next().unwrap_or("").trim();
    let reused = match first {
        STARTED => false,
        REUSED => true,
        other => bail!("first line is `{other}`, expected `{STARTED}` or `{REUSED}`"),
    };
    let get = |key: &str| field(stdout, key).with_context(|| format!("no `{key}:` line"));
    let url = get("url")?.to_string();
    let port = url
        .strip_prefix("http://127.0.0.1:")
        .with_context(|| format!("url `{url}` is not http://127.0.0.1:<port>"))?;
    ensure!(
        port.parse::<u16>().is_ok_and(|p| p > 0),
        "url `{url}` does not end in a port number"
    );
    let pid = get("pid")?;
    let pid = pid
        .parse::<u32>()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("pid `{pid}` is not a process id"))?;
    let features = get("features")?
        .split(',')
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    Ok(DaemonStart {
        reused,
        url,
        pid,
        version: get("version")?.to_string(),
        features,
    })
}

/// One `PASS|WARN|FAIL <label>: <detail>` line of `ktx runtime doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorCheck {
    /// `PASS`, `WARN` or `FAIL`.
    pub outcome: String,
    /// The check's label (`python`, `uv`, `bundled wheel`, ...).
    pub label: String,
    /// The rest of the line.
    pub detail: String,
}

/// The check lines of `ktx runtime doctor` (`Fix:` lines and anything else are skipped).
pub fn doctor(stdout: &str) -> Vec<DoctorCheck> {
    stdout
        .lines()
        .filter_map(|l| {
            let (outcome, rest) = l.split_once(' ')?;
            if !["PASS", "WARN", "FAIL"].contains(&outcome) {
                return None;
            }
            let (label, detail) = rest.split_once(": ")?;
            Some(DoctorCheck {
                outcome: outcome.into(),
                label: label.into(),
                detail: detail.into(),
            })
        })
        .collect()
}

/// The parts of `ktx sl query --format json` the smoke checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The compiled SQL.
    pub sql: String,
    /// `rows` as printed (`[]` without --execute).
    pub rows: Value,
    /// `plan.execution.mode`: `compile_only` or `executed`.
    pub mode: String,
}

/// Parses `ktx sl query --format json` stdout.
pub fn query(stdout: &str) -> Result<Query> {
    let v: Value = serde_json::from_str(stdout).context("stdout is not one JSON document")?;
    let sql = v
        .get("sql")
        .and_then(Value::as_str)
        .context("no string `sql`")?
        .to_string();
    let rows = v.get("rows").cloned().context("no `rows`")?;
    ensure!(rows.is_array(), "`rows` is not a list");
    let mode = v
        .pointer("/plan/execution/mode")
        .and_then(Value::as_str)
        .context("no string `plan.execution.mode`")?
        .to_string();
    Ok(Query { sql, rows, mode })
}

/// Whether `sql` is a real aggregate query: it has `SELECT` and `COUNT(` (any case).
pub fn is_count_sql(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.contains("SELECT") && upper.contains("COUNT(")
}

/// Whether `needles` occur in `text` in this order (each after the end of the previous one).
pub fn in_order(text: &str, needles: &[&str]) -> bool {
    let mut rest = text;
    for n in needles {
        match rest.find(n) {
            Some(i) => rest = &rest[i + n.len()..],
            None => return false,
        }
    }
    true
}

/// How `ktx demo` spells ktx in the commands it prints: `npx @kaelio/ktx` when npm's launcher
/// started it, else `ktx`.
pub const LAUNCH_PREFIXES: [&str; 2] = ["npx @kaelio/ktx", "ktx"];

/// The `<launcher> sl query ...` command lines `ktx demo` prints (indented, one per line).
pub fn demo_queries(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| {
            LAUNCH_PREFIXES.iter().any(|p| {
                l.strip_prefix(p)
                    .is_some_and(|r| r.starts_with(" sl query "))
            })
        })
        .map(str::to_string)
        .collect()
}

/// The words of a printed command after its launcher (`ktx` or `npx @kaelio/ktx`).
fn after_launcher(words: &[String]) -> Option<&[String]> {
    match words {
        [npx, pkg, rest @ ..] if npx == "npx" && pkg == "@kaelio/ktx" => Some(rest),
        [ktx, rest @ ..] if ktx == "ktx" => Some(rest),
        _ => None,
    }
}

/// The arguments (after the launcher) to run one of the demo's `queries` with `--execute
/// --yes`: the first one that prints JSON (no `--format`, or `--format json`), so its rows can
/// be checked.
pub fn demo_query_to_execute(queries: &[String]) -> Result<Vec<String>> {
    for q in queries {
        let words = shell_words(q)?;
        let Some(args) = after_launcher(&words) else {
            continue;
        };
        let format = args
            .iter()
            .position(|a| a == "--format")
            .map(|i| args.get(i + 1).map(String::as_str).unwrap_or(""))
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--format="))
                    .map(|f| f.trim())
            });
        if format.is_some_and(|f| f != "json") {
            continue;
        }
        let mut out = args.to_vec();
        for flag in ["--execute", "--yes"] {
            if !out.iter().any(|a| a == flag) {
                out.push(flag.into());
            }
        }
        return Ok(out);
    }
    bail!("none of the {} printed queries prints JSON", queries.len())
}

/// Splits a POSIX shell command line into words: whitespace separates, `'...'` is literal,
/// `"..."` allows `\"` `\\` `\$` `` \` `` escapes, a bare `\` escapes the next character.
/// Anything fancier (variables, globs, `;`) is not expected in printed commands and is refused.
pub fn shell_words(line: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => bail!("unterminated ' in `{line}`"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => bail!("unterminated \" in `{line}`"),
                        },
                        Some(ch @ ('$' | '`')) => {
                            bail!("`{ch}` inside \"...\" is not supported in `{line}`")
                        }
                        Some(ch) => cur.push(ch),
                        None => bail!("unterminated \" in `{line}`"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(
                    chars
                        .next()
                        .with_context(|| format!("trailing \\ in `{line}`"))?,
                );
            }
            ';' | '&' | '|' | '<' | '>' | '$' | '`' | '*' | '?' | '(' | ')' => {
                bail!("`{c}` is not supported in `{line}`")
            }
            ch => {
                in_word = true;
                cur.push(ch);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The vectors of `ktx embed --json`, checked: `dimensions` equals `dims`, one vector per
/// text (`count`), each `dims` finite numbers.
pub fn embeddings(stdout: &str, texts: usize, dims: usize) -> Result<Vec<Vec<f64>>> {
    let v: Value = serde_json::from_str(stdout).context("stdout is not one JSON document")?;
    let got_dims = v.get("dimensions").and_then(Value::as_u64);
    ensure!(
        got_dims == Some(dims as u64),
        "`dimensions` is {got_dims:?}, expected {dims}"
    );
    let vectors = v
        .get("embeddings")
        .and_then(Value::as_array)
        .context("no `embeddings` list")?;
    ensure!(
        vectors.len() == texts,
        "{} vectors for {texts} texts",
        vectors.len()
    );
    vectors
        .iter()
        .enumerate()
        .map(|(i, vec)| {
            let xs = vec
                .as_array()
                .with_context(|| format!("vector {i} is not a list"))?;
            ensure!(
                xs.len() == dims,
                "vector {i} has {} numbers, expected {dims}",
                xs.len()
            );
            xs.iter()
                .map(|x| x.as_f64().filter(|f| f.is_finite()))
                .collect::<Option<Vec<f64>>>()
                .with_context(|| format!("vector {i} holds a value that is not a finite number"))
        })
        .collect()
}

/// Cosine similarity of two equally long vectors (0 when either is all zeros).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// How many successful ABI calls the daemon logged (`POST /v1/call -> 200` lines; the daemon
/// writes them when started with `KTX_DAEMON_ACCESS_LOG=1`).
pub fn daemon_calls(log: &str) -> usize {
    log.lines()
        .filter(|l| l.trim_end().ends_with("POST /v1/call -> 200"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const START: &str = "Started KTX Python daemon\nurl: http://127.0.0.1:54437\npid: 6521\n\
                         version: 0.1.0rc0\nfeatures: core, local-embeddings\n";

    #[test]
    fn start_output_gives_url_pid_and_features() {
        let s = daemon_start(START).unwrap();
        assert_eq!(
            s,
            DaemonStart {
                reused: false,
                url: "http://127.0.0.1:54437".into(),
                pid: 6521,
                version: "0.1.0rc0".into(),
                features: vec!["core".into(), "local-embeddings".into()],
            }
        );
        let reused = START
            .replace(STARTED, REUSED)
            .replace(", local-embeddings", "");
        let s = daemon_start(&reused).unwrap();
        assert!(s.reused);
        assert_eq!(s.features, ["core"]);
        assert_eq!(field(START, "pid"), Some("6521"));
        assert_eq!(field(START, "nope"), None);
    }

    #[test]
    fn start_output_is_refused_when_a_line_is_wrong() {
        for (from, to, why) in [
            (STARTED, "Daemon started", "first line"),
            (
                "url: http://127.0.0.1:54437",
                "url: http://0.0.0.0:54437",
                "127.0.0.1",
            ),
            (":54437", ":http", "port"),
            ("pid: 6521", "pid: 0", "pid"),
            ("pid: 6521\n", "", "no `pid:`"),
        ] {
            let text = START.replace(from, to);
            let err = format!("{:#}", daemon_start(&text).unwrap_err());
            assert!(err.contains(why), "{from} -> {to}: {err}");
        }
    }

    #[test]
    fn doctor_lines_are_split_into_outcome_label_detail() {
        let text = "PASS python: Python 3.11.7 at /usr/bin/python3 (PATH (python3))\n\
                    WARN managed runtime: not installed yet (/r/0.1.0); it installs on first use\n  \
                    Fix: ktx runtime install\nFAIL bundled wheel: sha256 mismatch\nnoise\n";
        let checks = doctor(text);
        assert_eq!(checks.len(), 3);
        assert_eq!(checks[0].outcome, "PASS");
        assert_eq!(checks[0].label, "python");
        assert!(checks[0].detail.starts_with("Python 3.11.7"));
        assert_eq!(
            (checks[1].label.as_str(), checks[2].outcome.as_str()),
            ("managed runtime", "FAIL")
        );
    }

    #[test]
    fn query_json_gives_sql_rows_and_mode() {
        let out = json!({"connectionId": "c", "dialect": "sqlite",
            "sql": "SELECT\n  COUNT(*) AS orders__order_count\nFROM orders AS orders\nLIMIT 1000",
            "headers": ["orders.order_count"], "rows": [[3]], "totalRows": 1,
            "plan": {"execution": {"mode": "executed"}}});
        let q = query(&serde_json::to_string_pretty(&out).unwrap()).unwrap();
        assert_eq!(q.rows, json!([[3]]));
        assert_eq!(q.mode, "executed");
        assert!(is_count_sql(&q.sql));
        assert!(!is_count_sql("SELECT 1"));
        assert!(is_count_sql("select count(id) from t"));
        assert!(query("not json").is_err());
        let err = query(r#"{"sql": "x", "rows": [], "plan": {}}"#).unwrap_err();
        assert!(format!("{err}").contains("plan.execution.mode"), "{err}");
    }

    #[test]
    fn ordered_messages() {
        let err = "  Looking...\nInstalling KTX Python runtime (core) with uv...\n  x\nKTX Python runtime ready: /r\n";
        let wanted = [
            "Installing KTX Python runtime (core) with uv...",
            "KTX Python runtime ready:",
        ];
        assert!(in_order(err, &wanted));
        assert!(!in_order(err, &[wanted[1], wanted[0]]));
        assert!(!in_order(err, &["KTX Python runtime ready:", "ready:"]));
    }

    #[test]
    fn demo_queries_are_found_and_one_is_made_to_execute() {
        let out = "Created a ktx demo project in /t/d:\n  ktx.yaml\n\nTry these queries:\n\n  \
            ktx sl query --project-dir '/t/my d' --measure orders.revenue --dimension customers.segment\n  \
            ktx sl query --project-dir /t/d --measure orders.order_count --format sql\n  \
            ktx sl query --project-dir /t/d --measure orders.revenue --execute --format table\n\n\
            Then look around: cd /t/d && ktx sl validate\n";
        let qs = demo_queries(out);
        assert_eq!(qs.len(), 3);
        let npx = out.replace("  ktx sl query", "  npx @kaelio/ktx sl query");
        assert_eq!(
            demo_query_to_execute(&demo_queries(&npx)).unwrap(),
            demo_query_to_execute(&qs).unwrap()
        );
        assert_eq!(
            demo_query_to_execute(&qs).unwrap(),
            [
                "sl",
                "query",
                "--project-dir",
                "/t/my d",
                "--measure",
                "orders.revenue",
                "--dimension",
                "customers.segment",
                "--execute",
                "--yes"
            ]
        );
        // Only non-JSON formats: nothing to check rows on.
        let err = demo_query_to_execute(&qs[1..]).unwrap_err();
        assert!(format!("{err}").contains("prints JSON"), "{err}");
        // --format json and an existing --execute are kept as they are.
        let q = vec!["ktx sl query --measure m --execute --format json".to_string()];
        assert_eq!(
            demo_query_to_execute(&q).unwrap(),
            [
                "sl",
                "query",
                "--measure",
                "m",
                "--execute",
                "--format",
                "json",
                "--yes"
            ]
        );
    }

    #[test]
    fn shell_words_handle_python_shlex_quoting() {
        // shlex.quote("/tmp/it's") == "'/tmp/it'\"'\"'s'"
        assert_eq!(
            shell_words(r#"a '/tmp/it'"'"'s' "x \"y\"" b\ c"#).unwrap(),
            ["a", "/tmp/it's", "x \"y\"", "b c"]
        );
        assert_eq!(shell_words("  a   '' b ").unwrap(), ["a", "", "b"]);
        for bad in ["a 'b", "a \"b", "a; rm", "$HOME", "a \\"] {
            assert!(shell_words(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn embeddings_are_checked_and_compared() {
        let v = json!({"model": "m", "dimensions": 3, "count": 2,
            "embeddings": [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]]});
        let e = embeddings(&v.to_string(), 2, 3).unwrap();
        assert!((cosine(&e[0], &e[1]) - 0.6).abs() < 1e-12);
        assert_eq!(cosine(&e[0], &[0.0; 3]), 0.0);
        assert!(embeddings(&v.to_string(), 3, 3).is_err());
        let err = embeddings(&v.to_string(), 2, 384).unwrap_err();
        assert!(format!("{err}").contains("expected 384"), "{err}");
        let short = json!({"dimensions": 3, "embeddings": [[1.0, 0.0]]});
        assert!(
            format!("{:#}", embeddings(&short.to_string(), 1, 3).unwrap_err())
                .contains("vector 0 has 2")
        );
        // JSON has no NaN; a null (what NaN becomes) or a string is not a finite number.
        let nan = json!({"dimensions": 2, "embeddings": [[1.0, null]]});
        assert!(
            format!("{:#}", embeddings(&nan.to_string(), 1, 2).unwrap_err())
                .contains("not a finite number")
        );
    }

    #[test]
    fn daemon_calls_count_only_successful_calls() {
        let log = "2026 ktx-daemon[1] GET /health -> 200\n2026 ktx-daemon[1] POST /v1/call -> 200\n\
                   2026 ktx-daemon[1] POST /v1/call -> 401\n2026 ktx-daemon[1] POST /v1/call -> 200\n";
        assert_eq!(daemon_calls(log), 2);
        assert_eq!(daemon_calls(""), 0);
    }
}
