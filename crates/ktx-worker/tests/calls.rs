//! Calls against a real Python worker: results, stdout capture, errors with their locations,
//! the result ABI, the module cache by content hash, the channel's isolation, checks.

mod common;

use common::{worker, Scripts, SLOW_OK};
use ktx_worker::{CallErrorKind, CallOutcome};
use serde_json::json;

fn err(o: &CallOutcome) -> &ktx_worker::CallError {
    o.result.as_ref().expect_err("an error")
}

#[test]
fn a_call_returns_the_value_and_the_captured_stdout() {
    let s = Scripts::new();
    let script = s.add(
        "hello",
        "def render(context):\n    print('hello', context['name'])\n    return {'greeting': 'hi ' + context['name'], 'n': [1, 2.5, None, True]}\n",
        "render",
    );
    let mut w = worker();
    let out = w.call(&script, &json!({"name": "ada"}), SLOW_OK);
    assert_eq!(
        out.result.as_ref().unwrap(),
        &json!({"greeting": "hi ada", "n": [1, 2.5, null, true]})
    );
    assert_eq!(out.stdout, "hello ada\n");
    assert!(!out.stdout_truncated);
    assert!(out.latency > std::time::Duration::ZERO);
    let st = &w.stats().scripts["hello"];
    assert_eq!(
        (st.calls, st.errors, st.timeouts, st.restarts),
        (1, 0, 0, 0)
    );
}

#[test]
fn a_raised_exception_is_typed_with_its_location_and_the_worker_goes_on() {
    let s = Scripts::new();
    let script = s.add(
        "boom",
        "def helper(x):\n    return x['missing']\n\ndef render(context):\n    print('before')\n    return helper(context)\n",
        "render",
    );
    let mut w = worker();
    let pid = w.pid();
    let out = w.call(&script, &json!({}), SLOW_OK);
    let e = err(&out);
    assert_eq!(e.kind, CallErrorKind::Raised);
    assert_eq!(e.message, "KeyError: 'missing'");
    let loc = e.location.as_deref().unwrap();
    assert!(loc.ends_with("boom.py:2:12"), "{loc}");
    let tb = e.traceback.as_deref().unwrap();
    assert!(tb.contains("in helper") && tb.contains("in render"), "{tb}");
    assert!(!tb.contains("ktx_worker"), "worker frames leak into: {tb}");
    assert_eq!(out.stdout, "before\n");
    assert_eq!(w.pid(), pid, "an exception does not cost the process");
    assert_eq!(w.stats().scripts["boom"].errors, 1);
}

#[test]
fn load_failures_and_missing_entrypoints_are_typed() {
    let s = Scripts::new();
    let mut w = worker();
    let syntax = s.add(
        "syntax",
        "def render(context):\n    return (1 +\n",
        "render",
    );
    let e = err(&w.call(&syntax, &json!(null), SLOW_OK)).clone();
    assert_eq!(e.kind, CallErrorKind::LoadFailed);
    assert!(e.message.starts_with("SyntaxError"), "{}", e.message);
    assert!(e.location.unwrap().contains("syntax.py:2:"));

    let top = s.add(
        "top",
        "import json\nraise RuntimeError('no config')\n",
        "render",
    );
    let e = err(&w.call(&top, &json!(null), SLOW_OK)).clone();
    assert_eq!(e.kind, CallErrorKind::LoadFailed);
    assert_eq!(e.message, "RuntimeError: no config");
    assert!(e.location.unwrap().ends_with("top.py:2:1"));

    let missing = s.add("missing", "def main(context):\n    return 1\n", "render");
    let e = err(&w.call(&missing, &json!(null), SLOW_OK)).clone();
    assert_eq!(e.kind, CallErrorKind::MissingEntrypoint);
    assert!(
        e.message.contains("no `render` (callables found: main)"),
        "{}",
        e.message
    );

    let mut gone = missing.clone();
    gone.id = "gone".into();
    gone.path = s.dir.path().join("nope.py");
    let e = err(&w.call(&gone, &json!(null), SLOW_OK)).clone();
    assert_eq!(e.kind, CallErrorKind::LoadFailed);
    assert!(e.message.contains("cannot read"), "{}", e.message);
}

#[test]
fn results_outside_plain_json_are_bad_results_with_their_path() {
    let s = Scripts::new();
    let script = s.add(
        "abi",
        r#"
def nan(c): return {"rows": [{"x": 1}, {"x": float("nan")}]}
def inf(c): return [float("-inf")]
def raw(c): return {"data": b"\x00"}
def aset(c): return {"tags": {1, 2}}
def keys(c): return {"by": {1: "one"}}
def big(c): return {"n": 2**70}
def neg(c): return -(2**63) - 1
def obj(c): return {"a b": object()}
def surrogate(c): return "\ud800"
def deep(c):
    x = []
    for _ in range(200):
        x = [x]
    return x
def fine(c): return {"t": (1, 2), "max": 2**64 - 1, "min": -(2**63), "f": 1e308}
"#,
        "nan",
    );
    let mut w = worker();
    let cases = [
        ("nan", "$.rows[1].x", "nan is not a JSON number"),
        ("inf", "$[0]", "-inf is not a JSON number"),
        ("raw", "$.data", "bytes is not JSON: decode it to a string"),
        ("aset", "$.tags", "set is not JSON: return a sorted list"),
        ("keys", "$.by", "object key 1 (int) is not a string"),
        ("big", "$.n", "does not fit in 64 bits"),
        ("neg", "$", "does not fit in 64 bits"),
        ("obj", "$[\"a b\"]", "object is not JSON"),
        ("surrogate", "$", "lone surrogate"),
        ("deep", "$", "nested deeper than 100 levels"),
    ];
    let pid = w.pid();
    for (entry, path, text) in cases {
        let mut r = script.clone();
        r.entrypoint = entry.into();
        let out = w.call(&r, &json!(null), SLOW_OK);
        let e = err(&out);
        assert_eq!(e.kind, CallErrorKind::BadResult, "{entry}: {e}");
        assert!(
            e.path.as_deref().unwrap().starts_with(path),
            "{entry}: {e:?}"
        );
        assert!(e.message.contains(text), "{entry}: {}", e.message);
    }
    let mut r = script.clone();
    r.entrypoint = "fine".into();
    let out = w.call(&r, &json!(null), SLOW_OK);
    assert_eq!(
        out.result.unwrap(),
        json!({"t": [1, 2], "max": 18446744073709551615u64, "min": i64::MIN, "f": 1e308})
    );
    assert_eq!(w.pid(), pid, "bad results do not cost the process");
}

#[test]
fn a_context_over_the_frame_limit_is_refused_without_losing_the_worker() {
    let s = Scripts::new();
    let script = s.add(
        "echo",
        "def render(context):\n    return len(context)\n",
        "render",
    );
    let mut w = worker();
    let pid = w.pid();
    let huge = serde_json::Value::String("x".repeat(ktx_worker::frame::MAX_FRAME));
    let e = err(&w.call(&script, &huge, SLOW_OK)).clone();
    assert_eq!(e.kind, CallErrorKind::BadResult);
    assert!(
        e.message.contains("over the 67108864-byte frame limit"),
        "{e}"
    );
    assert_eq!(
        w.call(&script, &json!("abc"), SLOW_OK).result.unwrap(),
        json!(3)
    );
    assert_eq!(w.pid(), pid);
}
