//! The one version of everything: the workspace `Cargo.toml` SemVer, and its PEP 440 mapping.

use anyhow::{bail, Context, Result};
use std::path::Path;

const ALLOWED: &str = "allowed SemVer forms are X.Y.Z, X.Y.Z-alpha.N, X.Y.Z-beta.N, \
X.Y.Z-rc.N and X.Y.Z-dev.N, which map to PEP 440 X.Y.Z, X.Y.ZaN, X.Y.ZbN, X.Y.ZrcN and X.Y.Z.devN";

/// Maps a ktx SemVer to the PEP 440 version of the Python distribution.
///
/// `X.Y.Z` stays as is; `-alpha.N` -> `aN`, `-beta.N` -> `bN`, `-rc.N` -> `rcN`, `-dev.N` ->
/// `.devN`. Anything else (`1.0.0-1`, `1.0.0-next.1`, build metadata `+b1`) is refused with an
/// error naming both schemes: e.g. `1.0.0-1` would read in PEP 440 as a post-release.
pub fn semver_to_pep440(semver: &str) -> Result<String> {
    let refuse = |why: &str| -> anyhow::Error {
        anyhow::anyhow!(
            "version `{semver}` cannot be mapped from SemVer to PEP 440 ({why}); {ALLOWED}"
        )
    };
    if semver.contains('+') {
        return Err(refuse(
            "SemVer build metadata `+...` has no PEP 440 equivalent",
        ));
    }
    let (core, pre) = match semver.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (semver, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| is_numeric_identifier(p)) {
        return Err(refuse(
            "the core must be three numbers X.Y.Z without leading zeros",
        ));
    }
    let Some(pre) = pre else {
        return Ok(core.to_string());
    };
    let Some((label, num)) = pre.split_once('.') else {
        return Err(refuse("the pre-release must be `<label>.<number>`"));
    };
    if !is_numeric_identifier(num) {
        return Err(refuse(
            "the pre-release number must be a number without leading zeros",
        ));
    }
    let pep = match label {
        "alpha" => format!("{core}a{num}"),
        "beta" => format!("{core}b{num}"),
        "rc" => format!("{core}rc{num}"),
        "dev" => format!("{core}.dev{num}"),
        _ => return Err(refuse("unknown pre-release label")),
    };
    Ok(pep)
}

fn is_numeric_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// Reads `[workspace.package] version` from `<root>/Cargo.toml`.
pub fn workspace_version(root: &Path) -> Result<String> {
    let path = root.join("Cargo.toml");
    let text = crate::fsx::read_to_string(&path)?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    doc.get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "{}: key `workspace.package.version` is missing or not a string; \
                 set it with `cargo xtask stamp-version <semver>`",
                path.display()
            )
        })
}

/// The version pair every artifact is stamped with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// The SemVer from Cargo.toml (`ktx --version`, npm).
    pub semver: String,
    /// Its PEP 440 mapping (the wheel).
    pub pep440: String,
}

/// Reads the workspace version and maps it to PEP 440.
pub fn versions(root: &Path) -> Result<Versions> {
    let semver = workspace_version(root)?;
    let pep440 = semver_to_pep440(&semver)
        .with_context(|| format!("in {}", root.join("Cargo.toml").display()))?;
    Ok(Versions { semver, pep440 })
}

/// Refuses anything that is not a mappable SemVer (used before writing a version anywhere).
pub fn check_mappable(semver: &str) -> Result<()> {
    if semver.is_empty() {
        bail!("empty version; {ALLOWED}");
    }
    semver_to_pep440(semver).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_to_pep440_table() {
        let ok = [
            ("0.1.0-rc.0", "0.1.0rc0"),
            ("1.0.0", "1.0.0"),
            ("1.0.0-dev.3", "1.0.0.dev3"),
            ("1.2.3-alpha.1", "1.2.3a1"),
            ("1.2.3-beta.12", "1.2.3b12"),
            ("10.20.30-rc.4", "10.20.30rc4"),
        ];
        for (semver, pep) in ok {
            assert_eq!(semver_to_pep440(semver).unwrap(), pep, "{semver}");
        }
        let refused = [
            "1.0.0-1",
            "1.0.0-next.1",
            "1.0.0+b1",
            "1.0.0-rc.1+b1",
            "1.0",
            "01.0.0",
            "1.0.0-rc",
            "1.0.0-rc.01",
            "1.0.0-RC.1",
            "",
        ];
        for semver in refused {
            let err = format!("{:#}", semver_to_pep440(semver).unwrap_err());
            assert!(
                err.contains("SemVer") && err.contains("PEP 440"),
                "{semver}: {err}"
            );
            assert!(err.contains(&format!("`{semver}`")), "{err}");
        }
    }

    #[test]
    fn reads_the_workspace_version() {
        let v = versions(&crate::project_root()).unwrap();
        assert_eq!(semver_to_pep440(&v.semver).unwrap(), v.pep440);
    }
}
