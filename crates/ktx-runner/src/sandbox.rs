//! `ktx python`'s policy: the limits and their defaults, the bundle it runs (the newest
//! installed `lang-python`, else the shipped one, see [`crate::bundles`]), the compiled-module
//! cache dir, the runtime feature (`sandbox`, installed under the call's policy like a
//! driver), the first-use note, and the calls (`sandbox.status`, then `sandbox.run`).
//!
//! The guest runs in the managed runtime's wasmtime (`ktx_sandbox` in python-runtime), one-shot
//! or through the daemon (which keeps the engine and the module loaded). Trust decisions are
//! made here, in Rust: the bundle's signature and sizes before every run (its bytes were
//! hashed when it was installed); the host re-hashes the wasm only when it compiles it, and
//! keys its cache on the signed sha256.

use std::time::Duration;

use base64::Engine as _;

use ktx_runtime::ops::{SandboxRun, SandboxRunResult, SandboxStatus};
use ktx_runtime::{Feature, Runtime};

use crate::{bundles, ops, CallOptions, RunError};

/// Default wall-clock limit of a run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default linear-memory limit (128 MiB).
pub const DEFAULT_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
/// Default bytes kept per output stream (1 MiB).
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1024 * 1024;
/// The longest wall-clock limit accepted (a day).
pub const MAX_TIMEOUT: ktx_base::duration::Seconds =
    ktx_base::duration::Seconds::POSITIVE_UP_TO_A_DAY;
/// The largest memory limit accepted (4 GiB: wasm32's whole address space).
pub const MAX_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Time the runner allows beyond the guest's own limit: the runtime may start, compile the
/// module on first use (~5 s), and must be the one that reports the timeout.
pub const CALL_MARGIN: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The Python source.
    pub code: String,
    /// Shown in tracebacks (`<string>` for `-c`).
    pub filename: String,
    /// The guest's `sys.argv[1:]`.
    pub argv: Vec<String>,
    /// The guest's stdin bytes (`None`: empty).
    pub stdin: Option<Vec<u8>>,
}

/// The limits of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall clock.
    pub timeout: Duration,
    /// Linear memory, bytes.
    pub memory_bytes: u64,
    /// Fuel budget; `None`: unmetered.
    pub fuel: Option<u64>,
    /// Bytes kept per stream.
    pub max_output_bytes: u64,
    /// Fixed random source and clocks.
    pub deterministic: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            fuel: None,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            deterministic: false,
        }
    }
}

/// `--timeout SECONDS`: more than 0, at most a day (the one seconds parser).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    MAX_TIMEOUT
        .parse(text)
        .filter(|d| d.as_millis() >= 1)
        .ok_or_else(|| {
            format!("{text:?} is not a number of seconds between 0.001 and 86400 (e.g. 10, 2.5)")
        })
}

/// A size such as `128MiB`, `1GiB`, `512KiB`, `64MB` (decimal) or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    parse_size::parse_size(text.trim())
        .map_err(|e| format!("{text:?} is not a size ({e}); write e.g. 128MiB, 1GiB or 1048576"))
}

/// `--memory SIZE`: at least 16 MiB (CPython does not start in less), at most 4 GiB.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if !(SandboxRun::MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&bytes) {
        return Err(format!(
            "{text:?} is {bytes} bytes: the memory limit must be between 16MiB and 4GiB"
        ));
    }
    Ok(bytes)
}

/// `--max-output SIZE`: at least 1 byte.
pub fn parse_max_output(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!(
            "{text:?}: the output limit must be at least 1 byte"
        )),
        n => Ok(n),
    }
}

/// Runs `program` under `limits` in the sandbox of the runtime `rt`: resolves the bundle,
/// makes the cache dir, asks `sandbox.status` and says when the module will be compiled, then
/// calls `sandbox.run`. The `sandbox` feature is installed per `opts.policy` when missing.
pub fn run(
    rt: &Runtime,
    program: &Program,
    limits: &Limits,
    opts: &CallOptions,
) -> Result<SandboxRunResult, RunError> {
    let layout = rt.layout();
    let bundle = bundles::resolve(layout, bundles::LANG_PYTHON, bundles::PYTHON_WASM)?;
    let cache_dir = ktx_runtime::trust::ensure_dir(layout, &layout.sandbox_cache_dir())?;
    let opts = call_options(opts, limits);
    let status = ops::call_with(
        rt,
        &SandboxStatus {
            wasm: bundle.asset.clone(),
            wasm_sha256: bundle.sha256.clone(),
            cache_dir: cache_dir.clone(),
        },
        &opts,
    )?;
    if !status.cached {
        eprintln!("{}", ktx_runtime::messages::SANDBOX_COMPILING);
    }
    let req = SandboxRun {
        wasm: bundle.asset,
        wasm_sha256: bundle.sha256,
        cache_dir,
        code: program.code.clone(),
        filename: program.filename.clone(),
        argv: program.argv.clone(),
        stdin: program
            .stdin
            .as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        timeout_ms: limits.timeout.as_millis().clamp(1, u64::MAX as u128) as u64,
        memory_bytes: limits.memory_bytes,
        fuel: limits.fuel,
        max_output_bytes: limits.max_output_bytes,
        deterministic: limits.deterministic,
    };
    ops::call_with(rt, &req, &opts)
}

/// The call options of a sandbox call: the `sandbox` feature added, and a call time limit that
/// outlives the guest's own by [`CALL_MARGIN`].
pub fn call_options(opts: &CallOptions, limits: &Limits) -> CallOptions {
    let mut opts = opts.clone();
    if !opts.features.contains(&Feature::Sandbox) {
        opts.features.push(Feature::Sandbox);
    }
    opts.timeout = opts.timeout.max(limits.timeout + CALL_MARGIN);
    opts
}

/// The one-line note `ktx python` prints on stderr after a run that did not simply end: a
/// limit, a trap, a cut stream. `None` for a run that exited on its own with nothing cut.
pub fn note(result: &SandboxRunResult, limits: &Limits) -> Option<String> {
    use ktx_runtime::ops::SandboxStatusKind as S;
    let mut parts = Vec::new();
    match result.status {
        S::Ok | S::Exit => {}
        S::Timeout => parts.push(format!(
            "stopped: the wall-clock limit of {} s was reached (--timeout)",
            trim_float(limits.timeout.as_secs_f64())
        )),
        S::OutOfFuel => parts.push(format!(
            "stopped: the fuel budget of {} ran out (--fuel)",
            limits
                .fuel
                .map(|f| f.to_string())
                .unwrap_or_else(|| "?".into())
        )),
        S::MemoryLimit => parts.push(format!(
            "stopped: the memory limit of {} bytes was reached (--memory)",
            limits.memory_bytes
        )),
        S::Error => parts.push(
            "stopped: the sandboxed Python crashed (a WebAssembly trap, e.g. a stack overflow)"
                .to_string(),
        ),
    }
    let cut: Vec<&str> = [
        (result.stdout_truncated, "stdout"),
        (result.stderr_truncated, "stderr"),
    ]
    .into_iter()
    .filter_map(|(t, name)| t.then_some(name))
    .collect();
    if !cut.is_empty() {
        parts.push(format!(
            "{} cut at {} bytes (--max-output)",
            cut.join(" and "),
            limits.max_output_bytes
        ));
    }
    (!parts.is_empty()).then(|| format!("ktx python: {}", parts.join("; ")))
}

/// The stable id of the doctor check of the sandbox.
pub const DOCTOR_CHECK: &str = "sandbox";

/// `ktx runtime doctor`'s sandbox check. When the runtime has the `sandbox` feature: the
/// bundle `ktx python` would use is fully verified (every byte hashed, then the signature),
/// the host says whether the compiled module is cached, and `print(1+1)` must print `2` (a
/// run that compiles and caches the module when it is not cached yet). Without the feature it
/// is an informational PASS: it installs on first use.
pub fn doctor_check(rt: &Runtime) -> ktx_runtime::doctor::Check {
    use ktx_runtime::doctor::{Check, Outcome};
    const LABEL: &str = "python sandbox";
    let fail = |detail: String, fix: &str| {
        Check::new(
            DOCTOR_CHECK,
            LABEL,
            Outcome::Fail,
            detail,
            Some(fix.to_string()),
        )
    };
    if ktx_runtime::trust::check_layout(rt.layout()).is_err() {
        return fail(
            "not checked: ktx does not use a runtime root that fails the `runtime root permissions` check".into(),
            "Fix the `runtime root permissions` failure above.",
        );
    }
    let receipt = rt.status(&[Feature::Core]).manifest;
    let has = receipt
        .as_ref()
        .is_some_and(|r| r.features.iter().any(|f| f == Feature::Sandbox.as_str()));
    if !has {
        return Check::new(
            DOCTOR_CHECK,
            LABEL,
            Outcome::Pass,
            "not installed (optional: the first `ktx python` installs the `sandbox` feature, or `ktx runtime install --feature sandbox`)",
            None,
        );
    }
    match doctor_probe(rt) {
        Ok(detail) => Check::new(DOCTOR_CHECK, LABEL, Outcome::Pass, detail, None),
        Err((detail, fix)) => fail(detail, &fix),
    }
}

/// The checks behind [`doctor_check`]: `Ok(detail)` or `Err((detail, fix))`.
fn doctor_probe(rt: &Runtime) -> Result<String, (String, String)> {
    let layout = rt.layout();
    let rebuild = "Run `ktx runtime install --feature sandbox --force`, then `ktx runtime doctor`."
        .to_string();
    let (dir, installed) = match bundles::newest(layout, bundles::LANG_PYTHON) {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Err((
                "no lang-python bundle is installed and none ships with this ktx".into(),
                "Reinstall ktx, or `ktx bundle install lang-python@VERSION --registry DIR`.".into(),
            ))
        }
        Err(e) => return Err((e.to_string(), "Fix the error above, then retry.".into())),
    };
    let v = ktx_bundle::verify_dir(&dir, &ktx_bundle::Keyring::builtin()).map_err(|e| {
        (
            format!(
                "the bundle {} does not verify: {}",
                dir.display(),
                e.message
            ),
            e.fix.clone(),
        )
    })?;
    let entry = v
        .manifest
        .files
        .iter()
        .find(|f| f.path == bundles::PYTHON_WASM)
        .ok_or_else(|| {
            (
                format!(
                    "the bundle {} has no {}",
                    dir.display(),
                    bundles::PYTHON_WASM
                ),
                "Install a complete lang-python bundle.".to_string(),
            )
        })?;
    let cache_dir = ktx_runtime::trust::ensure_dir(layout, &layout.sandbox_cache_dir())
        .map_err(|e| (e.to_string(), "Fix the error above, then retry.".into()))?;
    let mut opts = CallOptions::new(crate::Policy::NoInput);
    opts.daemon = false;
    let limits = Limits::default();
    let opts = call_options(&opts, &limits);
    let wasm = v.dir.join(&entry.path);
    let status = ops::call_with(
        rt,
        &SandboxStatus {
            wasm: wasm.clone(),
            wasm_sha256: entry.sha256.clone(),
            cache_dir: cache_dir.clone(),
        },
        &opts,
    )
    .map_err(|e| (format!("sandbox.status failed: {e}"), rebuild.clone()))?;
    let run = ops::call_with(
        rt,
        &SandboxRun {
            wasm,
            wasm_sha256: entry.sha256.clone(),
            cache_dir,
            code: "print(1+1)".into(),
            filename: "<doctor>".into(),
            argv: Vec::new(),
            stdin: None,
            timeout_ms: limits.timeout.as_millis() as u64,
            memory_bytes: limits.memory_bytes,
            fuel: None,
            max_output_bytes: limits.max_output_bytes,
            deterministic: false,
        },
        &opts,
    )
    .map_err(|e| (format!("a run of print(1+1) failed: {e}"), rebuild.clone()))?;
    if run.stdout != "2\n" || run.cli_exit_code() != 0 {
        return Err((
            format!(
                "print(1+1) gave status {} and stdout {:?} (stderr: {:?})",
                run.status.as_str(),
                run.stdout,
                run.stderr
            ),
            rebuild,
        ));
    }
    let signer = if v.development {
        format!("{} (DEVELOPMENT key)", v.key_id)
    } else {
        v.key_id.clone()
    };
    Ok(format!(
        "{}@{} ({}) signed by {signer}; wasmtime {}; compiled module {}; print(1+1) printed 2 in {:.0} ms",
        v.manifest.name,
        v.manifest.version,
        if installed { "installed" } else { "shipped, installed on first use" },
        status.wasmtime_version,
        if status.cached { "cached" } else { "not cached yet (this check compiled it)" },
        run.wall_ms
    ))
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktx_runtime::ops::SandboxStatusKind;

    #[test]
    fn limits_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_memory("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_memory("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_memory("64MB").unwrap(), 64_000_000);
        assert_eq!(parse_memory("134217728").unwrap(), 128 << 20);
        for bad in ["1MiB", "8GiB", "lots", "", "-5MiB"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_max_output("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_max_output("10").unwrap(), 10);
        assert!(parse_max_output("0").is_err());
        assert_eq!(parse_timeout("2.5").unwrap(), Duration::from_millis(2500));
        for bad in ["0", "-1", "nan", "soon", "100000"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_call_outlives_the_guest_and_needs_the_sandbox_feature() {
        let limits = Limits {
            timeout: Duration::from_secs(3600),
            ..Limits::default()
        };
        let opts = call_options(&CallOptions::new(crate::Policy::NoInput), &limits);
        assert_eq!(opts.timeout, Duration::from_secs(3600) + CALL_MARGIN);
        assert_eq!(opts.features, [Feature::Core, Feature::Sandbox]);
        let again = call_options(&opts, &Limits::default());
        assert_eq!(again.features, [Feature::Core, Feature::Sandbox]);
        assert_eq!(again.timeout, opts.timeout);
    }

    #[test]
    fn notes_name_the_limit_and_the_flag() {
        let mut r: SandboxRunResult = serde_json::from_value(serde_json::json!({
            "status": "ok", "exitCode": 0, "stdout": "", "stderr": "",
            "stdoutTruncated": false, "stderrTruncated": false, "wallMs": 1.0,
            "fuel": null, "compiled": false, "compileMs": null
        }))
        .unwrap();
        let limits = Limits {
            timeout: Duration::from_millis(1500),
            ..Limits::default()
        };
        assert_eq!(note(&r, &limits), None);
        r.status = SandboxStatusKind::Timeout;
        r.stdout_truncated = true;
        assert_eq!(
            note(&r, &limits).unwrap(),
            "ktx python: stopped: the wall-clock limit of 1.5 s was reached (--timeout); stdout cut at 1048576 bytes (--max-output)"
        );
        r.status = SandboxStatusKind::MemoryLimit;
        r.stdout_truncated = false;
        assert!(note(&r, &limits).unwrap().contains("(--memory)"));
        r.status = SandboxStatusKind::OutOfFuel;
        assert!(note(&r, &limits).unwrap().contains("(--fuel)"));
        r.status = SandboxStatusKind::Error;
        assert!(note(&r, &limits).unwrap().contains("trap"));
    }
}
