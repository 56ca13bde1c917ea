//! Terminal progress for installs: a spinner with the current step when stderr is a terminal,
//! plain lines otherwise. The stable lines (`Installing KTX Python runtime (...) with uv...`,
//! `KTX Python runtime ready: <dir>`) are printed either way.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ktx_runtime::progress::{installing_message, ready_message, waiting_message};
use ktx_runtime::{Event, Reporter};

#[derive(Default)]
struct Shared {
    text: String,
    running: bool,
    drawn: bool,
}

/// Prints install progress on stderr.
pub struct TerminalReporter {
    tty: bool,
    shared: Arc<Mutex<Shared>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalReporter {
    /// A reporter that animates a spinner only if stderr is a terminal.
    pub fn new() -> Self {
        TerminalReporter {
            tty: std::io::stderr().is_terminal(),
            shared: Arc::default(),
            thread: Mutex::new(None),
        }
    }

    fn line(&self, text: &str) {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = std::io::stderr().lock();
        if s.drawn {
            let _ = write!(err, "\r\x1b[2K");
            s.drawn = false;
        }
        let _ = writeln!(err, "{text}");
    }

    fn start_spinner(&self) {
        let mut slot = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return;
        }
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running = true;
        let shared = Arc::clone(&self.shared);
        *slot = Some(thread::spawn(move || {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            let mut i = 0;
            loop {
                {
                    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                    if !s.running {
                        break;
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[2K{} {}", FRAMES[i % FRAMES.len()], s.text);
                    let _ = err.flush();
                    s.drawn = true;
                }
                i += 1;
                thread::sleep(Duration::from_millis(80));
            }
        }));
    }

    fn stop_spinner(&self) {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running = false;
        if let Some(h) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if s.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            s.drawn = false;
        }
    }
}

impl Reporter for TerminalReporter {
    fn report(&self, event: Event<'_>) {
        match event {
            Event::Waiting { pid } => self.line(&waiting_message(pid)),
            Event::Notice(text) => self.line(text),
            Event::Started {
                features,
                installer,
            } => {
                self.line(&installing_message(features, installer));
            }
            Event::Step(step) => {
                if self.tty {
                    self.shared.lock().unwrap_or_else(|p| p.into_inner()).text =
                        format!("{step}...");
                    self.start_spinner();
                } else {
                    self.line(&format!("  {step}..."));
                }
            }
            Event::Finished { dir } => {
                self.stop_spinner();
                self.line(&ready_message(dir));
            }
        }
    }
}

impl Drop for TerminalReporter {
    fn drop(&mut self) {
        self.stop_spinner();
    }
}
