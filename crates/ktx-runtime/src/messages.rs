//! The stable sentences ktx prints that black-box checks parse (`cargo xtask artifacts-verify`
//! reads them from the installed binary's output). They are defined here once: the commands
//! print these constants and xtask's parsers match against the same ones, so a wording change
//! is one edit that both sides see.

/// The first stdout line of `ktx runtime start` when it spawned a daemon (also the start of
/// the stderr note when a command started one on demand).
pub const DAEMON_STARTED: &str = "Started KTX Python daemon";
/// The first stdout line of `ktx runtime start` when a daemon was already running.
pub const DAEMON_REUSED: &str = "Using existing KTX Python daemon";
/// The stdout line of `ktx runtime stop` when it stopped a daemon.
pub const DAEMON_STOPPED: &str = "Stopped KTX Python daemon";
/// The stdout line of `ktx runtime stop` when no daemon was running.
pub const DAEMON_ALREADY_STOPPED: &str = "KTX Python daemon already stopped";
/// What every install's start line begins with: `Installing KTX Python runtime (<features>)
/// with <installer>...` (see [`installing`]).
pub const INSTALLING: &str = "Installing KTX Python runtime";
/// What the line of a finished install begins with, before the version dir (see [`ready`]).
pub const RUNTIME_READY: &str = "KTX Python runtime ready:";

/// The stderr line of `ktx python` before the first run compiles the sandbox's module (the
/// host's `sandbox.status` said it is not cached).
pub const SANDBOX_COMPILING: &str = "Compiling the Python sandbox (first use)...";

/// `Installing KTX Python runtime (core) with uv...`: `features` and `installer` as displayed.
pub fn installing(features: &str, installer: &str) -> String {
    format!("{INSTALLING} ({features}) with {installer}...")
}

/// `KTX Python runtime ready: <dir>`.
pub fn ready(dir: &std::path::Path) -> String {
    format!("{RUNTIME_READY} {}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_lines_keep_their_stable_shape() {
        assert_eq!(
            installing("core", "uv"),
            "Installing KTX Python runtime (core) with uv..."
        );
        assert_eq!(
            ready(std::path::Path::new("/r/0.1.0")),
            "KTX Python runtime ready: /r/0.1.0"
        );
    }
}
