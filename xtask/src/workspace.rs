//! The cargo workspace as cargo itself reports it (`cargo metadata --no-deps`, through the
//! `cargo_metadata` crate): its members, their versions and manifests, and the target
//! directory (which honours `CARGO_TARGET_DIR` and `build.target-dir` in `.cargo/config.toml`).
//! The ktx binary's path is derived from the target directory here and nowhere else.
//!
//! `[workspace.package] version` itself is not part of cargo's metadata: the version source of
//! truth is read (and written) as text by [`crate::version`] and [`crate::stamp_version`].

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// One workspace member.
#[derive(Debug, Clone)]
pub struct Member {
    /// Package name.
    pub name: String,
    /// Path of the member's `Cargo.toml`.
    pub manifest: PathBuf,
}

/// A loaded workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The cargo target directory.
    pub target_dir: PathBuf,
    /// Members, sorted by name.
    pub members: Vec<Member>,
}

impl Workspace {
    /// Asks cargo for the workspace whose manifest is `<root>/Cargo.toml`.
    pub fn load(root: &Path) -> Result<Workspace> {
        let manifest = root.join("Cargo.toml");
        let mut query = cargo_metadata::MetadataCommand::new();
        query
            .cargo_path(crate::cargo())
            .manifest_path(&manifest)
            .no_deps();
        let mut cmd = query.cargo_command();
        let out = crate::proc::run_ok(&mut cmd, Duration::from_secs(120)).with_context(|| {
            format!(
                "cannot read the cargo workspace of {} (`cargo metadata` failed; check that \
                 `cargo metadata --no-deps --manifest-path {}` works)",
                root.display(),
                manifest.display()
            )
        })?;
        let meta = cargo_metadata::MetadataCommand::parse(&out.stdout).with_context(|| {
            format!(
                "`cargo metadata` for {} printed no metadata",
                root.display()
            )
        })?;
        let mut members: Vec<Member> = meta
            .workspace_packages()
            .into_iter()
            .map(|p| Member {
                name: p.name.to_string(),
                manifest: p.manifest_path.clone().into_std_path_buf(),
            })
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Workspace {
            target_dir: meta.target_directory.into_std_path_buf(),
            members,
        })
    }

    /// This checkout's workspace ([`crate::project_root`]), asked for once per process.
    pub fn current() -> Result<&'static Workspace> {
        static CURRENT: OnceLock<Workspace> = OnceLock::new();
        if let Some(ws) = CURRENT.get() {
            return Ok(ws);
        }
        let ws = Workspace::load(&crate::project_root())?;
        Ok(CURRENT.get_or_init(|| ws))
    }
}

/// `<target>/<profile>/ktx[.exe]`.
pub fn ktx_binary_in(target_dir: &Path, profile: &str) -> PathBuf {
    target_dir
        .join(profile)
        .join(format!("ktx{}", std::env::consts::EXE_SUFFIX))
}

/// The target directory of the workspace at `root`: cargo's answer when cargo can load it;
/// for a partial copy of the project that is not a loadable workspace (as the release tests
/// make), cargo's default `<root>/target` (or `$CARGO_TARGET_DIR`, relative to `root`).
pub fn target_dir(root: &Path) -> PathBuf {
    let loaded = if root == crate::project_root() {
        Workspace::current().map(|w| w.target_dir.clone())
    } else {
        Workspace::load(root).map(|w| w.target_dir)
    };
    loaded.unwrap_or_else(|_| match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    })
}

/// Where a venv keeps its executables: `bin`, or `Scripts` on Windows.
pub const VENV_BIN: &str = if cfg!(windows) { "Scripts" } else { "bin" };

/// An executable's file name on this platform (`uv`, or `uv.exe` on Windows).
pub fn exe_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// The executable `name` of the venv at `venv`: `<venv>/bin/<name>`, or
/// `<venv>\Scripts\<name>.exe` on Windows.
pub fn venv_exe(venv: &Path, name: &str) -> PathBuf {
    venv.join(VENV_BIN).join(exe_name(name))
}

/// A program npm installs as a shell shim (`npm`, `npx`, and every package bin), as spawned
/// by name or path: `name`, or `name.cmd` on Windows, where the shims are batch files that
/// `CreateProcess` does not find by the bare name.
pub fn npm_shim(name: &str) -> String {
    if cfg!(windows) {
        format!("{name}.cmd")
    } else {
        name.to_string()
    }
}

/// The bin `name` that `npm install` links into a project: `<project>/node_modules/.bin/<name>`
/// (`.cmd` on Windows).
pub fn project_bin(project: &Path, name: &str) -> PathBuf {
    project
        .join("node_modules")
        .join(".bin")
        .join(npm_shim(name))
}

/// The bin `name` that `npm install -g --prefix <prefix>` installs: `<prefix>/bin/<name>`, or
/// `<prefix>\<name>.cmd` on Windows (npm puts global bins in the prefix itself there).
pub fn global_bin(prefix: &Path, name: &str) -> PathBuf {
    if cfg!(windows) {
        prefix.join(npm_shim(name))
    } else {
        prefix.join("bin").join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_workspace_from_cargo() {
        let ws = Workspace::current().unwrap();
        let root = crate::project_root();
        let names: Vec<&str> = ws.members.iter().map(|m| m.name.as_str()).collect();
        for name in ["ktx", "ktx-runtime", "ktx-daemon", "xtask"] {
            assert!(names.contains(&name), "{names:?}");
        }
        let ktx = ws.members.iter().find(|m| m.name == "ktx").unwrap();
        assert_eq!(ktx.manifest, root.join("crates/ktx/Cargo.toml"));
        assert_eq!(
            ktx_binary_in(&ws.target_dir, "release"),
            ws.target_dir.join("release").join("ktx")
        );
        assert_eq!(target_dir(&root), ws.target_dir);
    }

    #[test]
    fn a_partial_copy_falls_back_to_its_own_target() {
        let tmp = crate::testutil::temp_project();
        let want = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => tmp.path().join(dir),
            _ => tmp.path().join("target"),
        };
        assert_eq!(target_dir(tmp.path()), want);
    }
}
