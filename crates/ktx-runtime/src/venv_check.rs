//! Proving a freshly built venv works before the receipt claims it: `runtime.info` through the
//! one-shot transport (version and features), and for `local-embeddings` one real embedding.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::abi::{self, Reply};
use crate::assets::Assets;
use crate::error::{ErrorKind, RuntimeError};
use crate::features::Feature;
use crate::layout::Layout;
use crate::log::InstallLog;
use crate::ops::{Op, RuntimeInfo};
use crate::process::display_command;

/// Time allowed for the import check (first imports compile bytecode).
const IMPORT_CHECK_TIMEOUT: Duration = Duration::from_secs(300);
/// Time allowed to load the embedding model once after a `local-embeddings` install (the first
/// import of torch, transformers and sentence-transformers writes their bytecode: 31 s here).
const PRECOMPILE_TIMEOUT: Duration = Duration::from_secs(900);

/// The disk-full error for a check of the venv of `python` whose failure `text` reports a
/// full disk (not an import problem: a rebuild would fail the same way).
fn disk_full(python: &Path, text: &str) -> Option<RuntimeError> {
    crate::disk::mentions_disk_full(text).then(|| {
        let venv = python.parent().and_then(Path::parent).unwrap_or(python);
        crate::disk::error(
            "Checking the runtime imports in",
            venv,
            &crate::disk::disk_full_line(text),
        )
    })
}

/// Runs `runtime.info` through the one-shot transport and checks version and features.
pub(crate) fn import_check(
    layout: &Layout,
    assets: &Assets,
    python: &Path,
    features: &[Feature],
    log: &InstallLog,
) -> Result<Value, RuntimeError> {
    let request = abi::request(RuntimeInfo::NAME, json!({}));
    let fail =
        |msg: String| RuntimeError::new(ErrorKind::Install, format!("import check failed: {msg}"));
    let cmd = abi::oneshot_command(python);
    let (reply, out) = abi::oneshot(
        python,
        &request,
        IMPORT_CHECK_TIMEOUT,
        Some(&layout.version_dir()),
    )
    .map_err(|e| {
        log.line(&format!(
            "$ {} (runtime.info)\n    -> {e}",
            display_command(&cmd)
        ));
        disk_full(python, &e.to_string()).unwrap_or_else(|| fail(e.to_string()))
    })?;
    log.command(&cmd, &[], &out);
    let info = match reply {
        Reply::Ok(v) => v,
        Reply::Err { code, message, .. } => {
            return Err(disk_full(python, &message)
                .unwrap_or_else(|| fail(format!("runtime.info answered {code}: {message}"))))
        }
    };
    let typed = crate::ops::decode::<RuntimeInfo>(info.clone())
        .map_err(|e| fail(format!("runtime.info answered an unexpected result: {e}")))?;
    if typed.version != assets.manifest.version {
        return Err(fail(format!(
            "the venv reports kaelio-ktx {:?}, expected {}",
            typed.version, assets.manifest.version
        )));
    }
    for f in features {
        if !typed.features.iter().any(|h| h == f.as_str()) {
            let why = typed
                .feature_details
                .get(f.as_str())
                .and_then(|d| d.error.as_deref())
                .unwrap_or("not reported");
            return Err(fail(format!("feature {f} is not importable: {why}")));
        }
    }
    Ok(info)
}

/// Loads the embedding model and embeds one text through the one-shot transport, exactly as a
/// first `ktx embed` does: the bytecode of every module that needs is written now, and the
/// feature is proven to work (offline) before the receipt claims it.
pub(crate) fn precompile_embeddings(
    layout: &Layout,
    python: &Path,
    log: &InstallLog,
) -> Result<(), RuntimeError> {
    let request = abi::request(
        "embedding.compute",
        json!({"texts": ["ktx install check"], "normalize": true}),
    );
    let fail = |msg: String| {
        RuntimeError::new(
            ErrorKind::Install,
            format!("the local-embeddings check (load the model, embed one text) failed: {msg}"),
        )
    };
    let cmd = abi::oneshot_command(python);
    let (reply, out) = abi::oneshot(
        python,
        &request,
        PRECOMPILE_TIMEOUT,
        Some(&layout.version_dir()),
    )
    .map_err(|e| {
        log.line(&format!(
            "$ {} (embedding.compute)\n    -> {e}",
            display_command(&cmd)
        ));
        disk_full(python, &e.to_string()).unwrap_or_else(|| fail(e.to_string()))
    })?;
    log.command(&cmd, &[], &out);
    match reply {
        Reply::Ok(result) => {
            let dims = result["dimensions"].as_u64().unwrap_or(0);
            let rows = result["embeddings"].as_array().map_or(0, Vec::len);
            if rows != 1 || dims == 0 {
                return Err(fail(format!(
                    "embedding.compute returned {rows} vector(s) of {dims} dimensions for 1 text"
                )));
            }
            log.line(&format!(
                "local-embeddings: model loaded and {dims}-dimension vector computed in {:.1?} (bytecode written)",
                out.elapsed
            ));
            Ok(())
        }
        Reply::Err { code, message, .. } => Err(fail(format!(
            "embedding.compute answered {code}: {message}"
        ))),
    }
}
