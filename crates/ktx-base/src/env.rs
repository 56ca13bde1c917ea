//! The `KTX_*` environment variables ktx reads, named once.

/// The runtime root (default: the platform data directory).
pub const RUNTIME_ROOT: &str = "KTX_RUNTIME_ROOT";
/// The bundled asset directory (default: next to the executable).
pub const ASSET_DIR: &str = "KTX_ASSET_DIR";
/// An explicit Python interpreter for the install.
pub const PYTHON: &str = "KTX_PYTHON";
/// An explicit uv binary for the install.
pub const UV: &str = "KTX_UV";
/// An offline wheelhouse (`--find-links`).
pub const FIND_LINKS: &str = "KTX_FIND_LINKS";
/// Seconds to wait for another process's install lock (see [`crate::lock::timeout_from_env`]).
pub const LOCK_TIMEOUT: &str = "KTX_LOCK_TIMEOUT";
/// Use (and start) the daemon for calls (`1`), or never (`0`).
pub const DAEMON: &str = "KTX_DAEMON";
/// Seconds of idle time after which the daemon exits.
pub const DAEMON_IDLE_TIMEOUT: &str = "KTX_DAEMON_IDLE_TIMEOUT";
/// Seconds a new daemon may take to answer `/health`.
pub const DAEMON_START_TIMEOUT: &str = "KTX_DAEMON_START_TIMEOUT";
/// How ktx was launched (`npx`, `npm`...), set by the npm launcher.
pub const LAUNCHER: &str = "KTX_LAUNCHER";
/// The npm package that launched ktx, set by the npm launcher.
pub const NPM_PACKAGE: &str = "KTX_NPM_PACKAGE";

/// Overrides where ktx looks for the bundles it ships (default: `bundles/` of the npm package,
/// next to `native/`).
pub const BUNDLE_DIR: &str = "KTX_BUNDLE_DIR";

/// The value of `name` when set and not empty (a blank value means unset).
pub fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
