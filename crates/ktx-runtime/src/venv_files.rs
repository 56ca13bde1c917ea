//! What makes a receipt's venv trustworthy and usable, checked cheaply (a few `stat`s and
//! `realpath`s, no Python start) by [`crate::status::status`], and so by the install fast path,
//! the runner and doctor:
//!
//! - **Confinement**: the venv resolves to a directory directly under this runtime's
//!   `<root>/<version>/venvs/`, and the interpreter to the venv's own `bin/python`
//!   (`Scripts\python.exe`). A receipt naming any other interpreter is never executed. The
//!   venv's `bin/python` is itself a link to the base interpreter (that is how venvs work):
//!   its directory is resolved, not the link.
//! - **Completeness**: the files the receipt lists in `requiredFiles` (recorded at install
//!   time by [`required_files`]) exist; receipts of older ktx are checked against
//!   [`fallback_required_files`], derived from the venv layout.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::layout::{venv_python, Layout};
use crate::receipt::Receipt;

/// `<venv>/lib/pythonX.Y/site-packages` (`<venv>\Lib\site-packages` on Windows), if present
/// (the newest `pythonX.Y` when there are several).
pub(crate) fn site_packages(venv: &Path) -> Option<PathBuf> {
    if cfg!(windows) {
        let p = venv.join("Lib").join("site-packages");
        return p.is_dir().then_some(p);
    }
    let mut found: Vec<PathBuf> = fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found.pop()
}

/// The venv's interpreter relative to the venv: `bin/python` (`Scripts\python.exe`).
fn python_rel() -> PathBuf {
    venv_python(Path::new(""))
}

/// The files that must exist in the freshly built `venv` for it to import `dist` (the wheel's
/// distribution name), relative to `venv`: the interpreter, `pyvenv.cfg`, site-packages, the
/// distribution's `RECORD` and every top-level `__init__.py` / `__main__.py` it lists. Falls
/// back to [`fallback_required_files`]' layout-derived set when the dist-info cannot be found
/// (the second element then says why, for the log).
pub(crate) fn required_files(
    venv: &Path,
    dist: &str,
    python_version: &str,
) -> (Vec<PathBuf>, Option<String>) {
    let Some(site) = site_packages(venv) else {
        return (
            layout_files(venv, python_version),
            Some(format!("{} has no site-packages", venv.display())),
        );
    };
    let Ok(site_rel) = site.strip_prefix(venv).map(Path::to_path_buf) else {
        return (layout_files(venv, python_version), None);
    };
    let prefix = format!("{}-", dist.to_ascii_lowercase().replace(['-', '.'], "_"));
    let dist_info = fs::read_dir(&site).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.to_ascii_lowercase().starts_with(&prefix) && n.ends_with(".dist-info"))
    });
    let Some(dist_info) = dist_info else {
        return (
            layout_files(venv, python_version),
            Some(format!("no {prefix}*.dist-info in {}", site.display())),
        );
    };
    let record = site_rel.join(&dist_info).join("RECORD");
    let text = match fs::read_to_string(venv.join(&record)) {
        Ok(t) => t,
        Err(e) => {
            return (
                layout_files(venv, python_version),
                Some(format!("cannot read {}: {e}", venv.join(&record).display())),
            )
        }
    };
    let mut files = vec![python_rel(), PathBuf::from("pyvenv.cfg"), site_rel.clone()];
    files.push(record);
    for line in text.lines() {
        let path = line.split(',').next().unwrap_or_default();
        let parts: Vec<&str> = path.split('/').collect();
        if let [top, file] = parts[..] {
            if (file == "__init__.py" || file == "__main__.py")
                && !top.ends_with(".dist-info")
                && !top.ends_with(".data")
                && venv.join(&site_rel).join(top).join(file).is_file()
            {
                files.push(site_rel.join(top).join(file));
            }
        }
    }
    (files, None)
}

/// The required files of a receipt written before ktx recorded them: the interpreter,
/// `pyvenv.cfg`, site-packages and the `ktx_daemon` package the one-shot transport runs.
pub(crate) fn fallback_required_files(receipt: &Receipt) -> Vec<PathBuf> {
    layout_files(&receipt.venv_dir, &receipt.interpreter.version)
}

fn layout_files(venv: &Path, python_version: &str) -> Vec<PathBuf> {
    let site = if cfg!(windows) {
        Some(PathBuf::from("Lib").join("site-packages"))
    } else {
        // `lib/pythonX.Y/site-packages` from the recorded version: no directory listing.
        let mut parts = python_version.split('.');
        match (parts.next(), parts.next()) {
            (Some(major), Some(minor))
                if !major.is_empty()
                    && !minor.is_empty()
                    && major
                        .bytes()
                        .chain(minor.bytes())
                        .all(|b| b.is_ascii_digit()) =>
            {
                Some(
                    PathBuf::from("lib")
                        .join(format!("python{major}.{minor}"))
                        .join("site-packages"),
                )
            }
            _ => site_packages(venv).and_then(|s| s.strip_prefix(venv).ok().map(Path::to_path_buf)),
        }
    };
    let mut files = vec![python_rel(), PathBuf::from("pyvenv.cfg")];
    match site {
        Some(site) => {
            files.push(site.clone());
            files.push(site.join("ktx_daemon").join("__init__.py"));
            files.push(site.join("ktx_daemon").join("__main__.py"));
        }
        // No site-packages at all: `lib` itself is what is missing.
        None => files.push(PathBuf::from(if cfg!(windows) { "Lib" } else { "lib" })),
    }
    files
}

/// Why the receipt's venv or interpreter is not this runtime's own, if it is not; otherwise the
/// venv's resolved path. `Err` texts are complete sentences without the fix.
pub(crate) fn confined_venv(layout: &Layout, receipt: &Receipt) -> Result<PathBuf, String> {
    let venv = &receipt.venv_dir;
    let Ok(real_venv) = dunce::canonicalize(venv) else {
        return Err(format!("the venv {} is gone", venv.display()));
    };
    let venvs = layout.venvs_dir();
    let real_venvs = dunce::canonicalize(layout.version_dir())
        .map(|v| v.join("venvs"))
        .unwrap_or_else(|_| venvs.clone());
    if real_venv.parent() != Some(real_venvs.as_path()) || !real_venv.is_dir() {
        return Err(format!(
            "the receipt names the venv {}, which resolves to {}, not a venv directory under {}; ktx runs only the interpreter of its own venvs",
            venv.display(),
            real_venv.display(),
            venvs.display()
        ));
    }
    let python = &receipt.python_path;
    let own = venv_python(&real_venv);
    let resolved = match (python.parent(), python.file_name()) {
        (Some(dir), Some(name)) => dunce::canonicalize(dir).ok().map(|d| d.join(name)),
        _ => None,
    };
    let inside = match &resolved {
        Some(p) => *p == own,
        // Its directory is gone: the path must at least be the venv's own interpreter by name
        // (then the venv is incomplete, which the file checks report).
        None => *python == venv_python(venv),
    };
    if !inside {
        return Err(format!(
            "the receipt's interpreter {} {}is not its venv's own interpreter {}; ktx does not run it",
            python.display(),
            resolved
                .filter(|p| p != python)
                .map(|p| format!("(resolved: {}) ", p.display()))
                .unwrap_or_default(),
            venv_python(venv).display()
        ));
    }
    Ok(real_venv)
}

/// The first required file of `receipt` missing from `real_venv` (the venv's resolved path), as
/// a sentence; `None` when all exist. Invalid entries (absolute, or with `..`) are reported as
/// such, never looked up outside the venv.
pub(crate) fn missing_file(receipt: &Receipt, real_venv: &Path) -> Option<String> {
    let listed;
    let files = if receipt.required_files.is_empty() {
        listed = fallback_required_files(receipt);
        &listed
    } else {
        &receipt.required_files
    };
    for rel in files {
        if rel.as_os_str().is_empty()
            || !rel.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Some(format!(
                "the receipt lists the required file {:?}, which is not a path inside the venv",
                rel
            ));
        }
        let path = receipt.venv_dir.join(rel);
        if fs::metadata(real_venv.join(rel)).is_err() {
            let what = if *rel == python_rel() {
                "is missing or points to a missing interpreter"
            } else {
                "is missing"
            };
            return Some(format!("the venv is damaged: {} {what}", path.display()));
        }
    }
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::receipt::{InstallerRecord, InterpreterRecord, RECEIPT_SCHEMA_VERSION};

    fn receipt(venv: &Path, python: &Path) -> Receipt {
        Receipt {
            schema_version: RECEIPT_SCHEMA_VERSION,
            ktx_version: "0.1.0".into(),
            wheel_sha256: "00".repeat(32),
            features: vec!["core".into()],
            venv_dir: venv.to_path_buf(),
            python_path: python.to_path_buf(),
            interpreter: InterpreterRecord {
                path: PathBuf::from("/usr/bin/python3"),
                version: "3.11.7".into(),
            },
            installer: InstallerRecord {
                name: "uv".into(),
                version: Some("0.13.8".into()),
            },
            installed_at: "2026-01-01T00:00:00Z".into(),
            required_files: Vec::new(),
        }
    }

    /// A fake venv with the layout of a real one (the interpreter a link to a base one).
    fn fake_venv(venv: &Path) {
        let site = venv.join("lib/python3.11/site-packages");
        fs::create_dir_all(site.join("ktx_daemon")).unwrap();
        fs::create_dir_all(site.join("semantic_layer")).unwrap();
        fs::create_dir_all(site.join("kaelio_ktx-0.1.0.dist-info")).unwrap();
        fs::create_dir_all(venv.join("bin")).unwrap();
        for f in [
            "ktx_daemon/__init__.py",
            "ktx_daemon/__main__.py",
            "ktx_daemon/abi.py",
        ] {
            fs::write(site.join(f), "").unwrap();
        }
        fs::write(site.join("semantic_layer/__init__.py"), "").unwrap();
        fs::write(
            site.join("kaelio_ktx-0.1.0.dist-info/RECORD"),
            "ktx_daemon/__init__.py,sha256=x,0\nktx_daemon/__main__.py,sha256=x,0\nktx_daemon/abi.py,sha256=x,0\nsemantic_layer/__init__.py,sha256=x,0\nkaelio_ktx-0.1.0.dist-info/RECORD,,\n",
        )
        .unwrap();
        fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::os::unix::fs::symlink("/bin/sh", venv.join("bin/python")).unwrap();
    }

    #[test]
    fn the_install_records_the_files_the_import_needs() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("v");
        fake_venv(&venv);
        let (files, why) = required_files(&venv, "kaelio-ktx", "3.11.7");
        assert_eq!(why, None);
        let site = Path::new("lib/python3.11/site-packages");
        assert_eq!(
            files,
            vec![
                PathBuf::from("bin/python"),
                PathBuf::from("pyvenv.cfg"),
                site.to_path_buf(),
                site.join("kaelio_ktx-0.1.0.dist-info/RECORD"),
                site.join("ktx_daemon/__init__.py"),
                site.join("ktx_daemon/__main__.py"),
                site.join("semantic_layer/__init__.py"),
            ]
        );
        // Without the dist-info: the layout-derived set, and why.
        let (files, why) = required_files(&venv, "other-dist", "3.11.7");
        assert!(why.unwrap().contains("no other_dist-*.dist-info"));
        assert_eq!(files, layout_files(&venv, "3.11.7"));
    }

    #[test]
    fn a_missing_required_file_or_a_missing_lib_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let venvs = dir.path().join("0.1.0/venvs");
        let venv = venvs.join("v1");
        fake_venv(&venv);
        let layout = Layout::new(dir.path(), "0.1.0");
        let mut r = receipt(&venv, &venv.join("bin/python"));
        let real = confined_venv(&layout, &r).unwrap();
        // the fallback set (an older receipt) and the recorded set both pass on a whole venv
        assert_eq!(missing_file(&r, &real), None);
        r.required_files = required_files(&venv, "kaelio-ktx", "3.11.7").0;
        assert_eq!(missing_file(&r, &real), None);
        fs::remove_file(venv.join("lib/python3.11/site-packages/semantic_layer/__init__.py"))
            .unwrap();
        let why = missing_file(&r, &real).unwrap();
        assert!(
            why.starts_with("the venv is damaged: ")
                && why.ends_with("semantic_layer/__init__.py is missing"),
            "{why}"
        );
        fs::remove_dir_all(venv.join("lib")).unwrap();
        for required in [Vec::new(), r.required_files.clone()] {
            r.required_files = required;
            let why = missing_file(&r, &real).unwrap();
            assert!(why.contains("site-packages is missing"), "{why}");
        }
        r.required_files = vec![PathBuf::from("../../etc/passwd")];
        let why = missing_file(&r, &real).unwrap();
        assert!(why.contains("not a path inside the venv"), "{why}");
    }

    #[test]
    fn an_interpreter_or_venv_outside_the_runtime_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("root"), "0.1.0");
        let venv = layout.venvs_dir().join("v1");
        fake_venv(&venv);
        let evil = dir.path().join("evil");
        fs::create_dir_all(evil.join("bin")).unwrap();
        fs::write(evil.join("bin/python"), "#!/bin/sh\n").unwrap();
        // the venv's own interpreter, also spelled through `..` or a symlinked root
        let alias = dir.path().join("alias");
        std::os::unix::fs::symlink(layout.root(), &alias).unwrap();
        for python in [
            venv.join("bin/python"),
            venv.join("lib/../bin/python"),
            alias.join("0.1.0/venvs/v1/bin/python"),
        ] {
            assert!(
                confined_venv(&layout, &receipt(&venv, &python)).is_ok(),
                "{python:?}"
            );
        }
        // an interpreter elsewhere, by path, by `..` or through a symlinked bin dir
        fs::create_dir_all(venv.join("sneaky")).unwrap();
        std::os::unix::fs::symlink(evil.join("bin"), venv.join("sneaky/bin")).unwrap();
        for python in [
            evil.join("bin/python"),
            venv.join("bin/../../../../../evil/bin/python"),
            venv.join("sneaky/bin/python"),
            venv.join("bin/python3"),
        ] {
            let why = confined_venv(&layout, &receipt(&venv, &python)).unwrap_err();
            assert!(
                why.starts_with(&format!("the receipt's interpreter {} ", python.display()))
                    && why.contains("ktx does not run it"),
                "{why}"
            );
        }
        // a venv outside venvs/ (even one that is a real venv)
        let why = confined_venv(&layout, &receipt(&evil, &evil.join("bin/python"))).unwrap_err();
        assert!(why.contains("not a venv directory under"), "{why}");
        // a venvs/<id> that is a symlink to elsewhere
        std::os::unix::fs::symlink(&evil, layout.venvs_dir().join("v2")).unwrap();
        let v2 = layout.venvs_dir().join("v2");
        let why = confined_venv(&layout, &receipt(&v2, &v2.join("bin/python"))).unwrap_err();
        assert!(
            why.contains(&format!("resolves to {}", evil.display())),
            "{why}"
        );
    }
}
