//! `cargo xtask bench --platforms`: the release targets. Each binary's size (built with `cargo
//! xtask dist`'s cross build, which is a no-op when it is fresh; its cold build time is what
//! `cargo xtask dist --targets all` prints), the tarball with all five, and `ktx --version`
//! through the npm launcher against `node -e 0` for the static linux-x64 binary natively and
//! for linux-arm64 under qemu-user (node reports arch arm64 through the same preload
//! `artifacts-verify --target linux-arm64` uses).

use super::report::{Row, Size};
use super::timer::{interleave, Subject};
use super::{cmd_subject, progress, series, Plan};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

/// Adds the platform rows and sizes; `tmp` is the bench's temp dir.
pub fn rows(
    tmp: &Path,
    plan: Plan,
    rows: &mut Vec<Row>,
    sizes: &mut Vec<Size>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let root = crate::project_root();
    progress("platforms: the five release binaries (cargo zigbuild; fresh ones are reused)");
    let targets = crate::dist::cross::parse_targets("all")?;
    let mut native = Vec::new();
    for t in &targets {
        let bin = crate::dist::cross::build(&root, t)?;
        crate::binary_check::check_file(&t.npm, &bin, crate::binary_check::Linkage::Static)?;
        let bytes = std::fs::metadata(&bin)
            .with_context(|| format!("cannot stat {}", bin.display()))?
            .len();
        sizes.push(Size {
            id: format!("native.{}", t.npm),
            label: format!("{} binary ({})", t.npm, t.triple.unwrap_or("host")),
            bytes,
            files: None,
        });
        native.push((t.npm.clone(), bin));
    }
    let dist = tmp.join("dist-platforms");
    let packed = crate::pack_npm::pack(&crate::pack_npm::PackInputs {
        root: root.clone(),
        dist,
        native,
        epoch: crate::wheel::source_date_epoch_from_env()?,
        // The shipped lang-python counts against the budget too.
        bundles: Some(crate::pack_npm::ensure_shipped_bundles(
            &root,
            &tmp.join("bundle-src"),
        )?),
    })?;
    let npm = packed.manifest.artifact("npm")?;
    sizes.push(Size {
        id: "npm.all-platforms".into(),
        label: format!(
            "npm tarball with all five binaries (budget {} bytes)",
            crate::dist::TARBALL_BUDGET
        ),
        bytes: npm.bytes,
        files: None,
    });

    let pkg = tmp.join("pkg-platforms");
    let file = std::fs::File::open(&packed.tgz)
        .with_context(|| format!("cannot open {}", packed.tgz.display()))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&pkg)
        .with_context(|| format!("cannot extract {}", packed.tgz.display()))?;
    let launcher = pkg.join("package/bin/ktx.js");
    let preload = tmp.join("as-arm64.js");
    std::fs::write(
        &preload,
        "Object.defineProperty(process, 'arch', { value: 'arm64' });\n",
    )
    .with_context(|| format!("cannot write {}", preload.display()))?;
    let qemu_ok = crate::artifacts_verify::qemu::ensure_binfmt();
    if let Err(e) = &qemu_ok {
        notes.push(format!(
            "platforms: linux-arm64 under qemu not measured: {e:#}"
        ));
    }
    let node = |extra: &[&std::ffi::OsStr]| {
        let mut c = Command::new("node");
        c.args(extra).current_dir(tmp);
        c
    };
    progress(&format!(
        "platforms: launcher --version (linux-x64 static, linux-arm64 under qemu) vs node -e 0, {} runs each",
        plan.runs
    ));
    let req = format!("--require={}", preload.display());
    let mut subjects: Vec<Subject<'_>> = vec![
        cmd_subject(|| node(&["-e".as_ref(), "0".as_ref()]), None),
        cmd_subject(|| node(&[launcher.as_os_str(), "--version".as_ref()]), None),
    ];
    if qemu_ok.is_ok() {
        subjects.push(cmd_subject(
            || node(&[req.as_ref(), launcher.as_os_str(), "--version".as_ref()]),
            None,
        ));
        let arm = pkg.join("package/native/linux-arm64/ktx");
        subjects.push(cmd_subject(
            move || {
                let mut c = Command::new(&arm);
                c.arg("--version");
                c
            },
            None,
        ));
    }
    let s = interleave(plan.runs, 1, &mut subjects)?;
    let floor = series("node -e 0", &s[0])?;
    rows.push(Row::against(
        "platforms.launcher.linux-x64",
        series(
            "node bin/ktx.js --version -> native/linux-x64 (static musl)",
            &s[1],
        )?,
        floor.clone(),
    ));
    if s.len() > 2 {
        rows.push(Row::against(
            "platforms.launcher.linux-arm64-qemu",
            series(
                "node (arch arm64) bin/ktx.js --version -> native/linux-arm64 under qemu",
                &s[2],
            )?,
            floor,
        ));
        rows.push(Row::alone(
            "platforms.native.linux-arm64-qemu",
            series("native/linux-arm64/ktx --version under qemu", &s[3])?,
        ));
    }
    Ok(())
}
