//! Measure the daemon: cold start to healthy, and N sequential `runtime.ping` ABI calls
//! through the daemon against the same op one-shot (`python -I -m ktx_daemon call`).
//!
//! `cargo run --release -p ktx-daemon --example bench -- <python> <version> [N] [ONESHOT_N]`
//! (`<python>` must import `ktx_daemon` under `-I`, e.g. a runtime venv or a `.pth` dev venv).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(name: &str, mut v: Vec<Duration>) -> f64 {
    v.sort();
    let (p50, p95) = (pct(&v, 0.5), pct(&v, 0.95));
    println!(
        "{name}: n={} p50={p50:.3} ms p95={p95:.3} ms max={:.3} ms",
        v.len(),
        pct(&v, 1.0)
    );
    p50
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let python = args
        .get(1)
        .ok_or("usage: bench <python> <version> [N] [ONESHOT_N]")?;
    let version = args
        .get(2)
        .ok_or("usage: bench <python> <version> [N] [ONESHOT_N]")?;
    let n: usize = args.get(3).map_or(Ok(1000), |s| s.parse())?;
    let oneshot_n: usize = args.get(4).map_or(Ok(n), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let daemon_dir = dir.path().join("daemon");
    let cfg = ktx_daemon::StartConfig::new(python, &daemon_dir, version);

    let mut colds = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = ktx_daemon::start(&cfg)?;
        colds.push(t.elapsed());
        assert!(!out.reused);
        ktx_daemon::stop(&daemon_dir)?;
    }
    report("cold start to healthy (start())", colds);

    ktx_daemon::start(&cfg)?;
    let t = Instant::now();
    let again = ktx_daemon::start(&cfg)?;
    assert!(again.reused);
    println!(
        "start() reusing a running daemon: {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    let client = ktx_daemon::Client::connect_healthy(&daemon_dir, version, &[])
        .ok_or("daemon not healthy")?;
    println!(
        "connect_healthy: {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let request = serde_json::json!({"abi": 1, "op": "runtime.ping", "payload": {"x": 1}});
    let mut daemon_times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.call(&request)?;
        daemon_times.push(t.elapsed());
        assert_eq!(r["ok"], serde_json::json!(true));
    }
    let d50 = report("daemon call (keep-alive)", daemon_times);
    let rss = std::fs::read_to_string(format!("/proc/{}/status", client.state().pid))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        });
    println!("daemon {}", rss.as_deref().unwrap_or("VmRSS: unknown"));

    let mut fresh = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        let c = ktx_daemon::Client::connect_healthy(&daemon_dir, version, &[])
            .ok_or("daemon not healthy")?;
        c.call(&request)?;
        fresh.push(t.elapsed());
    }
    report("connect_healthy + call (new connection each)", fresh);
    ktx_daemon::stop(&daemon_dir)?;

    let body = serde_json::to_vec(&request)?;
    let mut oneshot = Vec::with_capacity(oneshot_n);
    for _ in 0..oneshot_n {
        let t = Instant::now();
        let mut child = Command::new(python)
            .args(["-I", "-m", "ktx_daemon", "call"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        child.stdin.take().ok_or("stdin")?.write_all(&body)?;
        let out = child.wait_with_output()?;
        oneshot.push(t.elapsed());
        assert!(out.status.success());
    }
    let o50 = report("one-shot call", oneshot);
    println!("ratio one-shot p50 / daemon p50: {:.0}x", o50 / d50);
    Ok(())
}
