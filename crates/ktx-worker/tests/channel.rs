//! The channel cannot be corrupted or read by scripts, the environment is minimal, and modules
//! are loaded once per content hash.

mod common;

use common::{config, worker, Scripts, SLOW_OK};
use ktx_worker::{CallErrorKind, Worker};
use serde_json::json;

#[test]
fn printing_a_fake_frame_header_cannot_corrupt_the_channel() {
    let s = Scripts::new();
    // A header announcing a 2-byte frame, then "{}", written every way a script can write.
    let script = s.add(
        "forger",
        r#"import os, sys
FAKE = b"\x00\x00\x00\x02{}"
def render(context):
    print(FAKE.decode("latin-1"), end="")
    sys.stdout.buffer.write(FAKE)
    sys.stdout.flush()
    os.write(1, FAKE)
    sys.__stdout__.write("\x00\x00\x00\x02{}")
    sys.__stdout__.flush()
    sys.stderr.write("\x00\x00\x00\x02{}")
    return {"still": "fine"}
"#,
        "render",
    );
    let mut w = worker();
    for _ in 0..3 {
        let out = w.call(&script, &json!(null), SLOW_OK);
        assert_eq!(out.result.unwrap(), json!({"still": "fine"}));
        assert_eq!(out.stdout, "\u{0}\u{0}\u{0}\u{2}{}\u{0}\u{0}\u{0}\u{2}{}");
    }
}

#[test]
fn scripts_read_an_empty_stdin() {
    let s = Scripts::new();
    let script = s.add(
        "reader",
        r#"import os, sys
def render(context):
    try:
        line = input()
    except EOFError:
        line = "EOF"
    return {"input": line, "read": sys.stdin.read(), "fd0": os.read(0, 100).decode()}
"#,
        "render",
    );
    let mut w = worker();
    let out = w.call(&script, &json!(null), SLOW_OK);
    assert_eq!(
        out.result.unwrap(),
        json!({"input": "EOF", "read": "", "fd0": ""})
    );
    // The request channel is intact after the script tried to read it.
    let out = w.call(&script, &json!(null), SLOW_OK);
    assert!(out.result.is_ok());
}

#[test]
fn the_worker_starts_with_a_minimal_environment_plus_the_configured_one() {
    let s = Scripts::new();
    let script = s.add(
        "env",
        "import os\ndef render(context):\n    return sorted(os.environ)\n",
        "render",
    );
    let mut cfg = config();
    cfg.env.push(("KTX_SCRIPT_TEST".into(), "1".into()));
    let mut w = Worker::spawn(cfg).unwrap();
    let names = w.call(&script, &json!(null), SLOW_OK).result.unwrap();
    let names: Vec<String> = serde_json::from_value(names).unwrap();
    let allowed = ["PATH", "HOME", "TMPDIR", "KTX_SCRIPT_TEST", "LC_CTYPE"];
    assert!(names.contains(&"KTX_SCRIPT_TEST".to_string()), "{names:?}");
    for name in &names {
        assert!(
            allowed.contains(&name.as_str()),
            "{name} leaked into the worker: {names:?}"
        );
    }
}

#[test]
fn a_module_is_loaded_once_per_content_hash_and_reloaded_on_a_new_one() {
    let s = Scripts::new();
    let v1 = "import itertools\nLOADS = itertools.count(1)\nLOADED = next(LOADS)\nCALLS = []\ndef render(context):\n    CALLS.append(context)\n    return {'version': 1, 'calls': len(CALLS)}\n";
    let script = s.add("counter", v1, "render");
    let mut w = worker();
    for n in 1..=3 {
        let out = w.call(&script, &json!(n), SLOW_OK);
        assert_eq!(
            out.result.unwrap(),
            json!({"version": 1, "calls": n}),
            "one module, reused"
        );
    }
    // Edited on disk but called with the same hash: the loaded version keeps running.
    let v2 = v1.replace("'version': 1", "'version': 2");
    std::fs::write(&script.path, &v2).unwrap();
    let out = w.call(&script, &json!(4), SLOW_OK);
    assert_eq!(out.result.unwrap(), json!({"version": 1, "calls": 4}));
    // The index's new hash: the running worker loads the new version, with fresh state.
    let updated = s.add("counter", &v2, "render");
    assert_ne!(updated.content_hash, script.content_hash);
    let pid = w.pid();
    let out = w.call(&updated, &json!(5), SLOW_OK);
    assert_eq!(out.result.unwrap(), json!({"version": 2, "calls": 1}));
    assert_eq!(w.pid(), pid, "the same process picked up the new version");
}

#[test]
fn a_failed_load_is_retried_on_the_next_call() {
    let s = Scripts::new();
    let flag = s.dir.path().join("ready");
    let source = format!(
        "import os\nif not os.path.exists({:?}):\n    raise RuntimeError('not yet')\ndef render(c):\n    return 'loaded'\n",
        flag.display().to_string()
    );
    let script = s.add("late", &source, "render");
    let mut w = worker();
    let e = w.call(&script, &json!(null), SLOW_OK).result.unwrap_err();
    assert_eq!(e.kind, CallErrorKind::LoadFailed);
    std::fs::write(&flag, "").unwrap();
    assert_eq!(
        w.call(&script, &json!(null), SLOW_OK).result.unwrap(),
        json!("loaded")
    );
}

#[test]
fn a_bad_interpreter_is_a_spawn_error_and_a_runtime_without_the_module_a_start_error() {
    let e = Worker::spawn(ktx_worker::WorkerConfig::new("/nonexistent/python3"))
        .err()
        .expect("no such interpreter");
    assert!(matches!(e, ktx_worker::WorkerError::Spawn { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/python3"), "{e}");

    // The base interpreter has no ktx_worker on its path under -I.
    let base = std::env::var("KTX_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let e = Worker::spawn(ktx_worker::WorkerConfig::new(base))
        .err()
        .expect("no ktx_worker module");
    let text = e.to_string();
    assert!(matches!(e, ktx_worker::WorkerError::Start { .. }), "{text}");
    assert!(text.contains("No module named ktx_worker"), "{text}");
    assert!(text.contains("ktx runtime install --yes"), "{text}");
}
