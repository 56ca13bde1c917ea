//! `--target <npm-target>`: which platform's binary the smoke runs, and how this host runs it.
//!
//! The host's own target runs natively. Others run under an emulator when this host has one
//! for them: `linux-arm64` under qemu-user on a linux-x64 host ([`super::qemu`]), `win32-x64`
//! under Wine on a linux-x64 host ([`super::wine`]: a narrower check, see there). Each emulated
//! target is one [`Runner`] variant; add a variant, its arm in [`parse`], and its module.

use anyhow::Result;

/// How the host runs the target's binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// The host's own platform.
    Native,
    /// `linux-arm64` under qemu-user (binfmt_misc), with an arm64 CPython sysroot.
    QemuArm64,
    /// `win32-x64` under Wine: the binary's own checks and ktx-base's unit tests, not the npm
    /// smoke (no Windows CPython or npm runs under Wine here).
    Wine,
}

/// A parsed `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// npm's `<platform>-<arch>` (a key of package.json's `ktx.native`).
    pub npm: String,
    /// How this host runs it.
    pub runner: Runner,
}

impl Target {
    /// The host's own target, run natively (the default).
    pub fn host() -> Result<Target> {
        Ok(Target {
            npm: crate::pack_npm::host_npm_target()?,
            runner: Runner::Native,
        })
    }
}

/// Parses `--target` (`host` or an npm target) for this host; the error lists what this host
/// can verify.
pub fn parse(spec: &str) -> Result<Target, String> {
    let host = crate::pack_npm::host_npm_target().map_err(|e| format!("{e:#}"))?;
    if spec == "host" || spec == host {
        return Ok(Target {
            npm: host,
            runner: Runner::Native,
        });
    }
    crate::pack_npm::check_npm_target(spec).map_err(|e| format!("{e:#}"))?;
    match (host.as_str(), spec) {
        ("linux-x64", "linux-arm64") => Ok(Target {
            npm: spec.to_string(),
            runner: Runner::QemuArm64,
        }),
        ("linux-x64", super::wine::TARGET) => Ok(Target {
            npm: spec.to_string(),
            runner: Runner::Wine,
        }),
        _ => Err(format!(
            "this {host} host cannot run {spec} binaries; it verifies: host ({host}){}",
            if host == "linux-x64" {
                ", linux-arm64 (under qemu-user), win32-x64 (under Wine)"
            } else {
                ""
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_emulated_targets_parse_and_others_are_refused() {
        let host = crate::pack_npm::host_npm_target().unwrap();
        for spec in ["host", host.as_str()] {
            assert_eq!(parse(spec).unwrap(), Target::host().unwrap());
        }
        let e = parse("linux-x86").unwrap_err();
        assert!(e.contains("unknown npm target"), "{e}");
        if host == "linux-x64" {
            assert_eq!(parse("linux-arm64").unwrap().runner, Runner::QemuArm64);
            assert_eq!(parse("win32-x64").unwrap().runner, Runner::Wine);
            let e = parse("darwin-arm64").unwrap_err();
            assert!(
                e.contains("cannot run darwin-arm64") && e.contains("linux-arm64 (under qemu"),
                "{e}"
            );
        }
    }
}
