//! Runaway scripts: each gives its typed result, the worker restarts, and the next call
//! succeeds. Also the restart budget, a full queue, and a batch that survives a timeout.

mod common;

use common::{config, worker, Scripts, SLOW_OK};
use ktx_worker::{CallErrorKind, ScriptRef, Worker};
use serde_json::json;
use std::time::Duration;

const SHORT: Duration = Duration::from_millis(1500);

fn ok_script(s: &Scripts) -> ScriptRef {
    s.add(
        "ok",
        "def render(context):\n    return {'ok': context}\n",
        "render",
    )
}

/// Runs `script`, expects `kind` and a message containing `text`, then a fresh worker (another
/// pid) answers the next call.
fn expect_then_recover(source: &str, deadline: Duration, kind: CallErrorKind, text: &str) {
    let s = Scripts::new();
    let bad = s.add("bad", source, "render");
    let ok = ok_script(&s);
    let mut w = worker();
    assert_eq!(
        w.call(&ok, &json!(1), SLOW_OK).result.unwrap(),
        json!({"ok": 1})
    );
    let before = w.pid().unwrap();
    let out = w.call(&bad, &json!(null), deadline);
    let e = out.result.as_ref().expect_err("the runaway call fails");
    assert_eq!(e.kind, kind, "{e}");
    assert!(e.message.contains(text), "{e}");
    let next = w.call(&ok, &json!(2), SLOW_OK);
    assert_eq!(
        next.result.unwrap(),
        json!({"ok": 2}),
        "the next call works"
    );
    assert_ne!(w.pid().unwrap(), before, "a fresh worker serves it");
    let st = &w.stats().scripts["bad"];
    assert_eq!((st.calls, st.errors, st.restarts), (1, 1, 1));
    assert_eq!(st.timeouts, u64::from(kind == CallErrorKind::Timeout));
    assert_eq!(w.stats().restarts, 1);
}

#[test]
fn a_script_that_loops_forever_times_out() {
    expect_then_recover(
        "def render(context):\n    while True:\n        pass\n",
        SHORT,
        CallErrorKind::Timeout,
        "ran past its 1.5 s deadline",
    );
}

#[test]
fn a_script_that_sleeps_times_out() {
    expect_then_recover(
        "import time\ndef render(context):\n    time.sleep(3600)\n",
        SHORT,
        CallErrorKind::Timeout,
        "deadline; the worker was killed",
    );
}

#[test]
fn top_level_code_that_loops_times_out_too() {
    expect_then_recover(
        "while True:\n    pass\ndef render(context):\n    return 1\n",
        SHORT,
        CallErrorKind::Timeout,
        "deadline",
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_script_that_allocates_without_bound_hits_the_memory_limit() {
    expect_then_recover(
        "def render(context):\n    chunks = []\n    while True:\n        chunks.append(bytearray(16 << 20))\n",
        SLOW_OK,
        CallErrorKind::Raised,
        "MemoryError",
    );
}

#[test]
fn a_script_that_calls_os_exit_crashes_the_call() {
    expect_then_recover(
        "import os, sys\ndef render(context):\n    sys.stderr.write('leaving now\\n')\n    os._exit(3)\n",
        SLOW_OK,
        CallErrorKind::Crashed,
        "the worker exited with code 3",
    );
}

#[cfg(unix)]
#[test]
fn a_script_killed_by_a_signal_crashes_the_call() {
    expect_then_recover(
        "import os, signal\ndef render(context):\n    os.kill(os.getpid(), signal.SIGSEGV)\n",
        SLOW_OK,
        CallErrorKind::Crashed,
        "killed by signal 11",
    );
}

#[test]
fn printing_100_mb_is_capped_and_the_call_still_returns() {
    let s = Scripts::new();
    let loud = s.add(
        "loud",
        "import sys\ndef render(context):\n    line = 'x' * 1023\n    for _ in range(100 * 1024):\n        print(line)\n    sys.stdout.buffer.write(b'tail')\n    return 'done'\n",
        "render",
    );
    let mut cfg = config();
    cfg.stdout_limit = 1 << 20;
    let mut w = Worker::spawn(cfg).unwrap();
    let pid = w.pid();
    let out = w.call(&loud, &json!(null), Duration::from_secs(60));
    assert_eq!(out.result.unwrap(), json!("done"));
    assert!(out.stdout_truncated);
    assert_eq!(out.stdout.len(), 1 << 20);
    assert!(out.stdout.starts_with("xxxx"));
    assert_eq!(w.pid(), pid, "capping stdout does not cost the process");
    let ok = ok_script(&s);
    let next = w.call(&ok, &json!(3), SLOW_OK);
    assert_eq!(next.result.unwrap(), json!({"ok": 3}));
    assert_eq!(next.stdout, "", "the capture is per call");
}

#[cfg(target_os = "linux")]
#[test]
fn a_timeout_kills_the_scripts_subprocesses_too() {
    let s = Scripts::new();
    let pidfile = s.dir.path().join("child.pid");
    let source = format!(
        "import subprocess, time\ndef render(context):\n    p = subprocess.Popen(['sleep', '3600'])\n    open({:?}, 'w').write(str(p.pid))\n    time.sleep(3600)\n",
        pidfile.display().to_string()
    );
    let spawner = s.add("spawner", &source, "render");
    let mut w = worker();
    let out = w.call(&spawner, &json!(null), SHORT);
    assert_eq!(out.result.unwrap_err().kind, CallErrorKind::Timeout);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild was in the worker's process group: it is gone (at most a zombie until
    // init reaps it).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| proc_state(&stat) != 'Z')
            .unwrap_or(false);
        if !alive {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "subprocess {pid} survived the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state letter of a `/proc/<pid>/stat` line.
#[cfg(target_os = "linux")]
fn proc_state(stat: &str) -> char {
    stat[stat.rfind(')').unwrap() + 1..]
        .trim_start()
        .chars()
        .next()
        .unwrap()
}

#[test]
fn a_batch_survives_a_timeout_in_the_middle() {
    let s = Scripts::new();
    let ok = ok_script(&s);
    let hang = s.add(
        "hang",
        "import time\ndef render(c):\n    time.sleep(3600)\n",
        "render",
    );
    let mut w = worker();
    let calls = vec![
        (ok.clone(), json!(1), SLOW_OK),
        (hang.clone(), json!(null), SHORT),
        (ok.clone(), json!(3), SLOW_OK),
    ];
    let out = w.call_many(&calls);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].result.as_ref().unwrap(), &json!({"ok": 1}));
    assert_eq!(
        out[1].result.as_ref().unwrap_err().kind,
        CallErrorKind::Timeout
    );
    assert_eq!(out[2].result.as_ref().unwrap(), &json!({"ok": 3}));
    assert_eq!(w.stats().scripts["ok"].calls, 2);
}

#[test]
fn a_full_queue_is_a_typed_error_and_the_next_call_works() {
    let s = Scripts::new();
    let ok = ok_script(&s);
    let mut cfg = config();
    cfg.queue_capacity = 4;
    let mut w = Worker::spawn(cfg).unwrap();
    let calls: Vec<_> = (0..6).map(|i| (ok.clone(), json!(i), SLOW_OK)).collect();
    let out = w.call_many(&calls);
    for (i, o) in out.iter().enumerate().take(4) {
        assert_eq!(o.result.as_ref().unwrap(), &json!({"ok": i}));
    }
    for o in &out[4..] {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.kind, CallErrorKind::QueueFull);
        assert!(e.message.contains("holds 4 calls"), "{e}");
    }
    assert_eq!(
        w.call(&ok, &json!(9), SLOW_OK).result.unwrap(),
        json!({"ok": 9})
    );
}

#[test]
fn past_the_restart_budget_calls_fail_fast_until_the_window_passes() {
    let s = Scripts::new();
    let ok = ok_script(&s);
    let exit = s.add(
        "exit",
        "import os\ndef render(c):\n    os._exit(1)\n",
        "render",
    );
    let mut cfg = config();
    cfg.restart_budget = 2;
    cfg.restart_window = Duration::from_secs(4);
    let mut w = Worker::spawn(cfg).unwrap();
    for _ in 0..2 {
        let e = w.call(&exit, &json!(null), SLOW_OK).result.unwrap_err();
        assert_eq!(e.kind, CallErrorKind::Crashed);
    }
    // The second crash used the last restart: the replacement started, so one more call runs.
    let e = w.call(&exit, &json!(null), SLOW_OK).result.unwrap_err();
    assert_eq!(e.kind, CallErrorKind::Crashed);
    let started = std::time::Instant::now();
    let e = w.call(&ok, &json!(1), SLOW_OK).result.unwrap_err();
    assert_eq!(e.kind, CallErrorKind::Crashed);
    assert!(
        e.message
            .starts_with("restart budget exhausted: the worker restarted 2 times within 4 s"),
        "{e}"
    );
    // Waiting for the window would take 4 s.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "fails fast, without waiting"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        w.call(&ok, &json!(2), SLOW_OK).result.unwrap(),
        json!({"ok": 2})
    );
}

#[test]
fn a_shared_worker_refuses_calls_past_its_queue_at_once() {
    let s = Scripts::new();
    let ok = ok_script(&s);
    let slow = s.add(
        "slow",
        "import time\ndef render(c):\n    time.sleep(4)\n    return 'slept'\n",
        "render",
    );
    let mut cfg = config();
    cfg.queue_capacity = 2;
    let shared = ktx_worker::SharedWorker::new(Worker::spawn(cfg).unwrap());
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (shared, slow) = (shared.clone(), slow.clone());
            std::thread::spawn(move || shared.call(&slow, &json!(null), SLOW_OK))
        })
        .collect();
    let wait = std::time::Instant::now() + Duration::from_secs(20);
    while shared.pending() < 2 {
        assert!(
            std::time::Instant::now() < wait,
            "the two calls never queued"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = std::time::Instant::now();
    let refused = shared.call(&ok, &json!(1), SLOW_OK);
    // A slot frees up only after a 4 s call: the refusal did not wait for one.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a full queue does not wait"
    );
    let e = refused.result.unwrap_err();
    assert_eq!(e.kind, CallErrorKind::QueueFull);
    assert!(e.message.contains("queue is full (2 calls"), "{e}");
    for t in threads {
        assert_eq!(t.join().unwrap().result.unwrap(), json!("slept"));
    }
    assert_eq!(
        shared.call(&ok, &json!(2), SLOW_OK).result.unwrap(),
        json!({"ok": 2})
    );
    let stats = shared.stats();
    assert_eq!(stats.scripts["slow"].calls, 2);
    let ok_stats = &stats.scripts["ok"];
    assert_eq!(
        (ok_stats.calls, ok_stats.errors),
        (2, 1),
        "the refusal is counted"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn dropping_the_worker_kills_its_process_group() {
    let s = Scripts::new();
    let spawner = s.add(
        "bg",
        "import subprocess\ndef render(c):\n    return subprocess.Popen(['sleep', '3600']).pid\n",
        "render",
    );
    let mut w = worker();
    let worker_pid = w.pid().unwrap();
    let child: u32 =
        serde_json::from_value(w.call(&spawner, &json!(null), SLOW_OK).result.unwrap()).unwrap();
    drop(w);
    let gone = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| proc_state(&stat) == 'Z')
            .unwrap_or(true)
    };
    assert!(gone(worker_pid), "the worker outlived its Worker");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gone(child) {
        assert!(
            std::time::Instant::now() < deadline,
            "the script's subprocess outlived the Worker"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
