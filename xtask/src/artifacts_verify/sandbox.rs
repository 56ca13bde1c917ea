//! Step 11: `ktx python -c "print(1+1)" --yes` through the installed package: the lazy install
//! of the `sandbox` feature, the shipped `lang-python` bundle installed with its signature
//! required, the first compile, and `2` on stdout. The bundle's own seed checks (the wasm is
//! over 50,000 bytes and starts with `\0asm`) run on the installed copy here and on the packed
//! one in step 0 ([`super::package::check`]).

use super::exec::RunExt;
use super::{Ctx, INSTALL};
use anyhow::{Context, Result};

use crate::bundle::MIN_WASM_BYTES;

/// Whether `wasm` passes the seed checks (over [`MIN_WASM_BYTES`], the `\0asm` magic).
pub fn looks_like_python_wasm(wasm: &[u8]) -> bool {
    wasm.len() > MIN_WASM_BYTES && wasm.starts_with(b"\0asm")
}

/// Step 11.
pub fn python_one_plus_one(ctx: &mut Ctx) -> Result<()> {
    let ran = ctx
        .ktx(&["python", "-c", "print(1+1)", "--yes"])
        .succeeds(INSTALL)?;
    ran.require(
        ran.stdout() == "2\n",
        format!("expected `2` on stdout, got {:?}", ran.stdout()),
    )?;
    let lang = ctx.version_dir()?.join("bundles/lang-python");
    let version = std::fs::read_dir(&lang)
        .with_context(|| format!("ktx python installed no bundle in {}", lang.display()))?
        .flatten()
        .find(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .with_context(|| format!("no installed lang-python version in {}", lang.display()))?;
    let wasm_path = version.path().join("python.wasm");
    let wasm = crate::fsx::read(&wasm_path)?;
    ran.require(
        looks_like_python_wasm(&wasm),
        format!(
            "{} is {} bytes starting with {:?}: not CPython for WASI",
            wasm_path.display(),
            wasm.len(),
            &wasm[..wasm.len().min(4)]
        ),
    )?;
    let v = ktx_bundle::verify_dir(&version.path(), &ktx_bundle::Keyring::builtin())
        .map_err(|e| anyhow::anyhow!("the installed bundle does not verify: {}", e.message))?;
    ran.require(
        v.manifest.files.iter().any(|f| f.path == "python.wasm"),
        "the installed bundle's manifest has no python.wasm",
    )
}
