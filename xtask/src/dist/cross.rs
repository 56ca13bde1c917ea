//! Release builds of `ktx` for the npm targets: the host's with plain cargo, every other with
//! `cargo zigbuild` (zig as the C compiler and linker), both tools pinned and pip-installed
//! from PyPI into `<root>/.dev-tools/cross` on first use (like `.dev-venv`).
//!
//! Linux binaries are static musl (`*-unknown-linux-musl`): they run on every distribution,
//! old glibc (RHEL 8, Amazon Linux 2) and none (Alpine) alike, which a glibc 2.17 build would
//! not (no Alpine) and the host build does not (it needs glibc 2.34). ktx's hot path is process
//! spawning and file I/O, where musl's slower allocator does not show.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The pinned zig (PyPI `ziglang`).
pub const ZIGLANG: &str = "ziglang==0.17.0";
/// The pinned cargo-zigbuild (PyPI `cargo-zigbuild`, the crates.io tool's binary wheels).
pub const CARGO_ZIGBUILD: &str = "cargo-zigbuild==0.24.0";

/// How one npm target is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// npm's `<platform>-<arch>` (a key of package.json's `ktx.native`).
    pub npm: String,
    /// The Rust target triple, or None for the host build (`cargo build --release`).
    pub triple: Option<&'static str>,
}

/// The Rust triple for an npm target (see the module docs for musl).
pub fn triple_of(npm: &str) -> Result<&'static str> {
    Ok(match npm {
        "linux-x64" => "x86_64-unknown-linux-musl",
        "linux-arm64" => "aarch64-unknown-linux-musl",
        "darwin-x64" => "x86_64-apple-darwin",
        "darwin-arm64" => "aarch64-apple-darwin",
        "win32-x64" => "x86_64-pc-windows-gnu",
        "win32-arm64" => "aarch64-pc-windows-gnullvm",
        other => {
            crate::pack_npm::check_npm_target(other)?;
            bail!("no Rust target known for npm target `{other}`")
        }
    })
}

/// The five release targets `all` stands for (win32-arm64 runs win32-x64 under emulation).
pub const ALL: [&str; 5] = [
    "linux-x64",
    "linux-arm64",
    "darwin-x64",
    "darwin-arm64",
    "win32-x64",
];

/// Parses `--targets`: `host` (this machine's own build), `all` (the five release targets,
/// cross-built) or a comma-separated list of npm targets and `host`.
pub fn parse_targets(spec: &str) -> Result<Vec<Target>> {
    let mut out: Vec<Target> = Vec::new();
    for word in spec.split(',').map(str::trim) {
        let add: Vec<Target> = match word {
            "host" => vec![Target {
                npm: crate::pack_npm::host_npm_target()?,
                triple: None,
            }],
            "all" => ALL
                .iter()
                .map(|t| {
                    Ok(Target {
                        npm: t.to_string(),
                        triple: Some(triple_of(t)?),
                    })
                })
                .collect::<Result<_>>()?,
            t => vec![Target {
                npm: t.to_string(),
                triple: Some(triple_of(t).with_context(|| {
                    format!("--targets {spec}: `{t}` is not `host`, `all` or an npm target")
                })?),
            }],
        };
        for t in add {
            if out.iter().any(|o| o.npm == t.npm) {
                bail!("--targets {spec}: {} is named twice", t.npm);
            }
            out.push(t);
        }
    }
    Ok(out)
}

/// The tools directory: a venv holding `zig` and `cargo-zigbuild`.
pub fn tools_dir(root: &Path) -> PathBuf {
    root.join(".dev-tools").join("cross")
}

/// Creates the tools venv and pip-installs the pinned zig and cargo-zigbuild, unless the venv
/// already holds exactly these pins (recorded in `pins.txt`, written last). Returns its
/// executables directory.
pub fn ensure_tools(root: &Path) -> Result<PathBuf> {
    let dir = tools_dir(root);
    let bin = dir.join(crate::workspace::VENV_BIN);
    let pins = format!("{ZIGLANG}\n{CARGO_ZIGBUILD}\n");
    let stamp = dir.join("pins.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == pins) {
        return Ok(bin);
    }
    let python = bin.join(crate::workspace::exe_name("python"));
    if !python.exists() {
        println!("cross tools: creating {}", dir.display());
        let py = if cfg!(windows) { "python" } else { "python3" };
        crate::proc::run_ok(
            std::process::Command::new(py)
                .arg("-m")
                .arg("venv")
                .arg(&dir),
            std::time::Duration::from_secs(300),
        )
        .context("cannot create the cross tools venv; install Python >= 3.10 with venv")?;
    }
    println!("cross tools: pip install {ZIGLANG} {CARGO_ZIGBUILD} (about 60 MB, once)");
    let status = std::process::Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
        .args([ZIGLANG, CARGO_ZIGBUILD])
        .env_remove("PIP_REQUIRE_VIRTUALENV")
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !status.success() {
        bail!(
            "pip could not install {ZIGLANG} and {CARGO_ZIGBUILD} into {} ({status}; its output \
             is above): check access to PyPI, then `rm -rf {}` and retry",
            dir.display(),
            dir.display()
        );
    }
    crate::fsx::write_all_atomic(&[(stamp, pins.into_bytes())])?;
    Ok(bin)
}

/// `rustup target add <triple>` unless rustup lists it installed (no rustup: cargo will say
/// what is missing).
pub fn ensure_rust_target(triple: &str) -> Result<()> {
    let Ok(out) = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == triple)
    {
        return Ok(());
    }
    println!("rustup target add {triple}");
    let status = std::process::Command::new("rustup")
        .args(["target", "add", triple])
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("`rustup target add {triple}` failed ({status}); run it by hand and retry");
    }
    Ok(())
}

/// Builds `ktx` (release) for `target`; returns the binary's path.
pub fn build(root: &Path, target: &Target) -> Result<PathBuf> {
    let Some(triple) = target.triple else {
        return crate::pack_npm::build_release_binary(root);
    };
    ensure_rust_target(triple)?;
    let bin = ensure_tools(root)?;
    let mut parts = vec![bin];
    if let Some(p) = std::env::var_os("PATH") {
        parts.extend(std::env::split_paths(&p));
    }
    let path = std::env::join_paths(parts).context("cannot put the cross tools on PATH")?;
    println!(
        "==> {}: cargo zigbuild --release -p ktx --target {triple}",
        target.npm
    );
    let started = std::time::Instant::now();
    let mut cmd = std::process::Command::new(crate::cargo());
    cmd.args(["zigbuild", "--release", "-p", "ktx", "--target", triple])
        .current_dir(root)
        .env("PATH", path);
    // zig's default minimum macOS is its newest; ktx supports these (arm64 Macs start at 11).
    match target.npm.as_str() {
        "darwin-arm64" => {
            cmd.env("MACOSX_DEPLOYMENT_TARGET", "11.0");
        }
        "darwin-x64" => {
            cmd.env("MACOSX_DEPLOYMENT_TARGET", "10.12");
        }
        _ => {}
    }
    let status = cmd
        .status()
        .context("cannot run cargo zigbuild (cargo-zigbuild from the cross tools)")?;
    if !status.success() {
        bail!(
            "cargo zigbuild for {} ({triple}) failed ({status}); its output is above",
            target.npm
        );
    }
    let exe = if target.npm.starts_with("win32-") {
        "ktx.exe"
    } else {
        "ktx"
    };
    let out = crate::workspace::target_dir(root)
        .join(triple)
        .join("release")
        .join(exe);
    if !out.is_file() {
        bail!("cargo zigbuild succeeded but {} is missing", out.display());
    }
    println!(
        "    {}: {} ({} bytes) in {:.0?}",
        target.npm,
        out.display(),
        std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0),
        started.elapsed()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_to_triples_and_bad_ones_are_refused() {
        let host = crate::pack_npm::host_npm_target().unwrap();
        assert_eq!(
            parse_targets("host").unwrap(),
            [Target {
                npm: host.clone(),
                triple: None
            }]
        );
        let all = parse_targets("all").unwrap();
        assert_eq!(
            all.iter()
                .map(|t| (t.npm.as_str(), t.triple.unwrap()))
                .collect::<Vec<_>>(),
            [
                ("linux-x64", "x86_64-unknown-linux-musl"),
                ("linux-arm64", "aarch64-unknown-linux-musl"),
                ("darwin-x64", "x86_64-apple-darwin"),
                ("darwin-arm64", "aarch64-apple-darwin"),
                ("win32-x64", "x86_64-pc-windows-gnu"),
            ]
        );
        let two = parse_targets("linux-arm64, win32-arm64").unwrap();
        assert_eq!(
            two.iter().map(|t| t.triple.unwrap()).collect::<Vec<_>>(),
            ["aarch64-unknown-linux-musl", "aarch64-pc-windows-gnullvm"]
        );
        for (spec, expect) in [
            ("linux-x86", "unknown npm target `linux-x86`"),
            ("host,linux-arm64,linux-arm64", "linux-arm64 is named twice"),
            ("all,darwin-arm64", "darwin-arm64 is named twice"),
            ("", "unknown npm target ``"),
        ] {
            let err = format!("{:#}", parse_targets(spec).unwrap_err());
            assert!(err.contains(expect), "{spec}: {err}");
        }
        // `host,<the host's target>` names one target twice as well.
        let err = format!("{:#}", parse_targets(&format!("host,{host}")).unwrap_err());
        assert!(err.contains("named twice"), "{err}");
    }
}
