//! Hints for the common causes of a failed install, recognised in a command's output: TLS
//! interception, no network (the offline wheelhouse), a missing venv or pip module, a full disk.

use std::path::Path;

use crate::fsutil::file_url;

/// Hints for the common causes, recognised in a failed command's output.
///
/// `wheel` is the bundled wheel, named in the wheelhouse recipe of the offline hints.
pub fn hints_for(output: &str, offline: bool, wheel: &Path) -> Vec<String> {
    let recipe = format!(
        "`python3 -m pip download -d wheelhouse {}` (with local-embeddings: `python3 -m pip download -d wheelhouse 'kaelio-ktx[local-embeddings] @ {}'`)",
        wheel.display(),
        file_url(wheel)
    );
    let o = output.to_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| o.contains(n));
    let mut hints = Vec::new();
    if any(&[
        "certificate verify failed",
        "invalid peer certificate",
        "unknownissuer",
        "self signed certificate",
        "self-signed certificate",
        "certificate_verify_failed",
        "sslerror",
        "tls handshake",
    ]) {
        hints.push(format!("TLS verification failed. If a proxy intercepts TLS on this network, point SSL_CERT_FILE at its CA bundle ({}) or set UV_SYSTEM_CERTS=1 (older uv: UV_NATIVE_TLS=1) to use the system trust store.", ktx_base::shell::set_env("SSL_CERT_FILE", if cfg!(windows) { "C:\\path\\to\\ca.pem" } else { "/path/to/ca.pem" })));
    }
    if !offline
        && any(&[
            "dns error",
            "failed to lookup address",
            "name or service not known",
            "temporary failure in name resolution",
            "network is unreachable",
            "connection refused",
            "error sending request",
            "failed to fetch",
            "could not fetch url",
            "newconnectionerror",
            "max retries exceeded",
            "operation timed out",
            "connection timed out",
            "no matching distribution found",
        ])
    {
        hints.push(format!("The package index could not be reached. On an offline or air-gapped machine, build a wheelhouse on a connected one with {recipe}, copy it over and run `ktx runtime install --find-links wheelhouse` (or set KTX_FIND_LINKS). Behind a proxy, set HTTPS_PROXY."));
    }
    if offline
        && any(&[
            "not found in the provided package locations",
            "no matching distribution",
            "because there is no version",
            "not found in the package registry",
            "were not found",
        ])
    {
        hints.push(format!("A package is missing from the --find-links wheelhouse. Rebuild it on a connected machine (same platform and Python version) with {recipe}."));
    }
    if any(&[
        "ensurepip is not available",
        "no module named venv",
        "no module named ensurepip",
    ]) {
        hints.push("This Python lacks the venv module. Install it (Debian/Ubuntu: `apt install python3-venv`) or install uv (https://docs.astral.sh/uv/getting-started/installation/).".to_string());
    }
    if any(&["no module named pip"]) {
        hints.push("This Python has no pip. Install uv (https://docs.astral.sh/uv/getting-started/installation/) or pip (Debian/Ubuntu: `apt install python3-pip`).".to_string());
    }
    if any(&["no space left on device"]) {
        hints.push("The disk is full. Free space, or set KTX_RUNTIME_ROOT to a directory on another disk; `ktx runtime prune --dry-run` lists old runtimes to remove.".to_string());
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        assert!(hints_for(
            "error: invalid peer certificate: UnknownIssuer",
            false,
            Path::new("/w.whl")
        )[0]
        .contains("SSL_CERT_FILE"));
        assert!(hints_for(
            "dns error: failed to lookup address",
            false,
            Path::new("/w.whl")
        )[0]
        .contains("--find-links"));
        assert!(hints_for("all fine", false, Path::new("/w.whl")).is_empty());
    }
}
