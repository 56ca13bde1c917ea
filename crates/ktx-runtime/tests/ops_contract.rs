//! The typed op contract (`ktx_runtime::ops`) against real responses of the Python ops,
//! captured in `tests/fixtures/ops/` by `python-runtime/tests/test_op_contract.py` (which
//! fails when an op's response changes shape, so these files stay true).
//!
//! Each result decodes into its type and serializes back to the same JSON: nothing the CLI
//! passes through in `--json` is lost, and unknown keys survive.

use serde_json::{json, Value};

use ktx_runtime::abi::{parse_response, Reply};
use ktx_runtime::ops::{
    decode, suggestions, DemoScaffold, EmbeddingCompute, Op, RuntimeInfo, RuntimePing, SandboxRun,
    SandboxStatus, SandboxStatusKind, SemanticQuery, SemanticValidate,
};

fn fixture(name: &str) -> Reply {
    let path = format!(
        "{}/tests/fixtures/ops/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse_response(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn result(name: &str) -> Value {
    match fixture(name) {
        Reply::Ok(v) => v,
        other => panic!("{name}: not ok: {other:?}"),
    }
}

/// Decodes `name`'s result as `O::Result`, checks it serializes back to the same JSON (also
/// with an unknown key added), and returns it.
fn round_trip<O: Op>(name: &str) -> O::Result
where
    O::Result: serde::Serialize,
{
    let raw = result(name);
    let typed = decode::<O>(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(serde_json::to_value(&typed).unwrap(), raw, "{name}");
    let mut future = raw.clone();
    future
        .as_object_mut()
        .unwrap()
        .insert("addedLater".into(), json!({"x": [1, 2.5]}));
    let again = decode::<O>(future.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        future,
        "{name}: unknown keys survive"
    );
    typed
}

#[test]
fn semantic_query_results_round_trip_in_the_contract_order() {
    let executed = round_trip::<SemanticQuery>("semantic_query_executed");
    assert_eq!(executed.headers.len(), 3);
    assert_eq!(executed.rows.len(), 2);
    assert_eq!(executed.total_rows, Some(3));
    assert!(executed.truncated());
    assert_eq!(executed.max_rows(), Some(2));
    // `--json` prints these keys first, in this order.
    let text = serde_json::to_string(&executed).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
    let keys = [
        "connectionId",
        "dialect",
        "sql",
        "headers",
        "rows",
        "totalRows",
        "plan",
    ];
    assert!(keys.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");

    let compiled = round_trip::<SemanticQuery>("semantic_query_compile_only");
    assert_eq!(compiled.total_rows, None);
    assert!(compiled.rows.is_empty() && !compiled.truncated());
    assert_eq!(compiled.max_rows(), None);
}

#[test]
fn semantic_validate_results_round_trip() {
    let ok = round_trip::<SemanticValidate>("semantic_validate_ok");
    assert!(ok.ok && ok.errors.is_empty());
    assert_eq!((ok.connections, ok.sources, ok.databases.len()), (1, 4, 1));
    let bad = round_trip::<SemanticValidate>("semantic_validate_errors");
    assert!(!bad.ok);
    let e = &bad.errors[0];
    assert_eq!(e.file, "semantic-layer/warehouse/orders.yaml");
    assert!(e.line.is_some() && !e.key.is_empty(), "{e:?}");
}

#[test]
fn demo_info_and_ping_results_round_trip() {
    let demo = round_trip::<DemoScaffold>("demo_scaffold");
    assert_eq!(demo.files.len(), 5);
    assert_eq!(demo.created, demo.files);
    assert!(demo.queries.iter().all(|q| q.starts_with("ktx sl query ")));
    let info = round_trip::<RuntimeInfo>("runtime_info");
    assert_eq!(info.package, "kaelio-ktx");
    assert!(info.features.contains(&"core".to_string()));
    assert!(info.feature_details["core"].available);
    let ping = round_trip::<RuntimePing>("runtime_ping");
    assert_eq!(ping.echo, json!({"x": 1}));
}

#[test]
fn embedding_results_round_trip_and_are_checked() {
    let out = round_trip::<EmbeddingCompute>("embedding_compute");
    assert_eq!(out.dimensions, 384);
    out.check(2).unwrap();
    assert_eq!(out.check(3).unwrap_err(), "2 vectors for 3 texts");
    let mut short = out.clone();
    short.embeddings[1].pop();
    assert_eq!(short.check(2).unwrap_err(), "vector 1 is not 384 numbers");
}

#[test]
fn requests_are_the_payloads_the_ops_document() {
    let q = SemanticQuery {
        project_dir: "/p".into(),
        measures: vec!["orders.revenue".into()],
        execute: true,
        timeout_seconds: Some(2.5),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&q).unwrap(),
        json!({"projectDir": "/p", "measures": ["orders.revenue"], "dimensions": [],
               "filters": [], "segments": [], "orderBy": [], "execute": true,
               "timeoutSeconds": 2.5})
    );
    let e = EmbeddingCompute {
        texts: vec!["a".into()],
        normalize: false,
    };
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"texts": ["a"], "normalize": false})
    );
    assert_eq!(serde_json::to_value(RuntimeInfo {}).unwrap(), json!({}));
}

#[test]
fn malformed_results_name_the_key() {
    let err = decode::<DemoScaffold>(json!({"dir": "/d", "files": [1]})).unwrap_err();
    assert!(err.starts_with("`files[0]`: invalid type"), "{err}");
    let err = decode::<SemanticQuery>(json!({"dialect": "sqlite"})).unwrap_err();
    assert!(err.contains("missing field `connectionId`"), "{err}");
}

#[test]
fn op_errors_carry_suggestions_as_data() {
    let Reply::Err {
        code,
        message,
        details,
    } = fixture("semantic_query_unknown_measure")
    else {
        panic!("expected an error");
    };
    assert_eq!(code, "unknown_measure");
    assert_eq!(message, "unknown measure 'orders.revenu'");
    assert_eq!(
        suggestions(&details).first().map(String::as_str),
        Some("orders.revenue")
    );
    assert!(suggestions(&json!({})).is_empty());
    assert!(suggestions(&json!({"suggestions": "x"})).is_empty());
}

#[test]
fn sandbox_results_round_trip_and_map_to_the_documented_exit_codes() {
    let st = round_trip::<SandboxStatus>("sandbox_status");
    assert!(st.cached);
    assert!(st.cache_path.ends_with(".cwasm"), "{}", st.cache_path);
    assert_eq!(st.engine_key.len(), 64);

    let ok = round_trip::<SandboxRun>("sandbox_run_ok");
    assert_eq!(ok.status, SandboxStatusKind::Ok);
    assert_eq!((ok.stdout.as_str(), ok.cli_exit_code()), ("2\n", 0));
    assert!(!ok.compiled && ok.compile_ms.is_none());

    let exit = round_trip::<SandboxRun>("sandbox_run_exit");
    assert_eq!(exit.status, SandboxStatusKind::Exit);
    assert_eq!(exit.cli_exit_code(), 1);
    assert!(exit.stderr.contains("ValueError: boom"), "{}", exit.stderr);

    let timeout = round_trip::<SandboxRun>("sandbox_run_timeout");
    assert_eq!(timeout.status, SandboxStatusKind::Timeout);
    assert_eq!(timeout.cli_exit_code(), 124);
    assert!(timeout.fuel.is_some());

    // Every status, and guest codes outside 1-255, map to the table in docs/json-output.md.
    let mut r = ok.clone();
    for (status, exit_code, want) in [
        (SandboxStatusKind::Exit, 3, 3),
        (SandboxStatusKind::Exit, 256, 1),
        (SandboxStatusKind::Exit, -1, 1),
        (SandboxStatusKind::OutOfFuel, 0, 125),
        (SandboxStatusKind::MemoryLimit, 1, 126),
        (SandboxStatusKind::Error, 1, 127),
    ] {
        r.status = status;
        r.exit_code = exit_code;
        assert_eq!(r.cli_exit_code(), want, "{status:?} {exit_code}");
        assert_eq!(
            serde_json::to_value(status).unwrap(),
            json!(status.as_str())
        );
    }
    let err = decode::<SandboxRun>(json!({"status": "exploded"})).unwrap_err();
    assert!(err.contains("unknown variant `exploded`"), "{err}");

    let Reply::Err { code, details, .. } = fixture("sandbox_run_invalid_payload") else {
        panic!("expected an error");
    };
    assert_eq!(code, "invalid_payload");
    assert!(suggestions(&details).is_empty());
    let Reply::Err { code, details, .. } = fixture("sandbox_run_bundle_mismatch") else {
        panic!("expected an error");
    };
    assert_eq!(code, "sandbox_bundle_mismatch");
    assert_eq!(suggestions(&details), ["ktx bundle verify"]);
}

#[test]
fn sandbox_requests_are_the_payloads_of_the_contract() {
    let run = SandboxRun {
        wasm: "/b/python.wasm".into(),
        wasm_sha256: "ab".repeat(32),
        cache_dir: "/r/sandbox-cache".into(),
        code: "print(1+1)".into(),
        filename: "<string>".into(),
        argv: vec!["x".into()],
        stdin: None,
        timeout_ms: 10_000,
        memory_bytes: 128 << 20,
        fuel: None,
        max_output_bytes: 1 << 20,
        deterministic: false,
    };
    assert_eq!(
        serde_json::to_value(&run).unwrap(),
        json!({"wasm": "/b/python.wasm", "wasmSha256": "ab".repeat(32),
               "cacheDir": "/r/sandbox-cache", "code": "print(1+1)", "filename": "<string>",
               "argv": ["x"], "stdin": null, "timeoutMs": 10000, "memoryBytes": 134217728,
               "fuel": null, "maxOutputBytes": 1048576, "deterministic": false})
    );
    let st = SandboxStatus {
        wasm: run.wasm.clone(),
        wasm_sha256: run.wasm_sha256.clone(),
        cache_dir: run.cache_dir.clone(),
    };
    assert_eq!(
        serde_json::to_value(&st).unwrap(),
        json!({"wasm": "/b/python.wasm", "wasmSha256": "ab".repeat(32),
               "cacheDir": "/r/sandbox-cache"})
    );
}
