//! Timing child processes precisely (the clock stops when `wait` returns, not on a polling
//! tick), with bounded time, and interleaving several subjects so that their ratios hold on a
//! noisy machine.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A finished, timed child.
#[derive(Debug)]
pub struct Timed {
    /// Wall time from just before spawn to the return of `wait`.
    pub elapsed: Duration,
    /// How it ended.
    pub status: ExitStatus,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
}

impl Timed {
    /// Milliseconds.
    pub fn ms(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1000.0
    }
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = r.read_to_end(&mut b);
        b
    })
}

/// Runs `cmd` (stdin = `input` or null, output captured), timing it; kills it after `timeout`.
/// Does not look at the exit status (see [`run_ok`]).
pub fn run(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Result<Timed> {
    let shown = crate::proc::display(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{shown}` (is it installed?)"))?;
    let pid = child.id();
    let out = reader(child.stdout.take().context("no stdout pipe")?);
    let err = reader(child.stderr.take().context("no stderr pipe")?);
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send((status, Instant::now()));
    });
    let (status, ended) = match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            bail!("`{shown}` did not finish within {timeout:?} and was killed");
        }
    };
    let status = status.with_context(|| format!("cannot wait for `{shown}`"))?;
    Ok(Timed {
        elapsed: ended - started,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// [`run`], failing with the command and the tails of its output unless it exits 0.
pub fn run_ok(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Result<Timed> {
    let t = run(cmd, input, timeout)?;
    if !t.status.success() {
        let f = crate::proc::Finished {
            status: t.status,
            stdout: String::from_utf8_lossy(&t.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&t.stderr).into_owned(),
        };
        return Err(crate::proc::failure(
            cmd,
            &f,
            "a benchmarked command failed",
        ));
    }
    Ok(t)
}

/// One subject of an interleaved measurement: called with the run index, returns the time of
/// what it measures in milliseconds (untimed set-up and clean-up may happen inside).
pub type Subject<'a> = Box<dyn FnMut(usize) -> Result<f64> + 'a>;

/// Runs every subject `warmup` times untimed, then `runs` rounds in which each subject runs
/// once. The order rotates and reverses from round to round, so no subject always follows the
/// same neighbour and slow drifts of the machine hit all of them alike. Returns the samples of
/// each subject, in the order given.
pub fn interleave(
    runs: usize,
    warmup: usize,
    subjects: &mut [Subject<'_>],
) -> Result<Vec<Vec<f64>>> {
    let n = subjects.len();
    for w in 0..warmup {
        for s in subjects.iter_mut() {
            s(usize::MAX - w)?;
        }
    }
    let mut samples = vec![Vec::with_capacity(runs); n];
    for round in 0..runs {
        let mut order: Vec<usize> = (0..n).map(|i| (i + round) % n.max(1)).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            samples[i].push(subjects[i](round)?);
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_every_subject_each_round_in_rotating_order() {
        let log = std::cell::RefCell::new(Vec::new());
        let mut subjects: Vec<Subject<'_>> = (0..3)
            .map(|k| -> Subject<'_> {
                let log = &log;
                Box::new(move |run| {
                    log.borrow_mut().push((k, run));
                    Ok(k as f64)
                })
            })
            .collect();
        let samples = interleave(2, 1, &mut subjects).unwrap();
        assert_eq!(samples, vec![vec![0.0; 2], vec![1.0; 2], vec![2.0; 2]]);
        let order: Vec<usize> = log.borrow().iter().skip(3).map(|(k, _)| *k).collect();
        assert_eq!(order, vec![0, 1, 2, 0, 2, 1]);
    }

    #[test]
    fn times_a_child_and_feeds_its_stdin() {
        let t = run_ok(
            Command::new("sh").args(["-c", "cat; sleep 0.05"]),
            Some(b"hello"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(t.stdout, b"hello");
        assert!(t.ms() >= 50.0, "{}", t.ms());
        assert!(run(
            Command::new("sleep").arg("5"),
            None,
            Duration::from_millis(100)
        )
        .is_err());
    }
}
