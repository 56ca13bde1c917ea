//! Writes npm package tarballs the way `npm pack` does: a `package/` prefix, files only,
//! package.json first then the rest sorted bytewise, mtime 1985-10-26T08:15:00Z, uid/gid 0,
//! empty owner names, modes 0644/0755, ustar headers, gzip with no name, mtime 0 and OS 255.

use anyhow::{bail, Context, Result};
use flate2::{Compression, GzBuilder};
use std::io::Write;

/// The mtime npm stamps on every packed file: 1985-10-26T08:15:00Z.
pub const NPM_MTIME: u64 = 499_162_500;

/// One file of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the package, `/`-separated, without the `package/` prefix.
    pub path: String,
    /// File contents.
    pub data: Vec<u8>,
    /// `true` for 0755 (launchers, native binaries), `false` for 0644.
    pub executable: bool,
}

/// Orders entries as npm pack does here: `package.json` first, then bytewise by path.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        (a.path != "package.json", a.path.as_bytes())
            .cmp(&(b.path != "package.json", b.path.as_bytes()))
    });
}

/// Builds the `.tgz` bytes of `entries` (sorted first with [`sort_entries`]). Refuses duplicate
/// paths and paths a ustar header cannot hold (no GNU/PAX long-name extensions are written).
pub fn build(mut entries: Vec<Entry>) -> Result<Vec<u8>> {
    sort_entries(&mut entries);
    if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
        bail!("the npm package would contain `{}` twice", w[0].path);
    }
    let mut tar = tar::Builder::new(Vec::new());
    for e in &entries {
        let full = format!("package/{}", e.path);
        let mut h = tar::Header::new_ustar();
        h.set_path(&full).with_context(|| {
            format!(
                "the path `{full}` ({} bytes) does not fit a ustar tar header (a name of at most \
                 100 bytes after a `/`, and a directory prefix of at most 155); shorten it",
                full.len()
            )
        })?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(e.data.len() as u64);
        h.set_mode(if e.executable { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(NPM_MTIME);
        h.set_username("").context("cannot set tar owner name")?;
        h.set_groupname("").context("cannot set tar group name")?;
        h.set_device_major(0).context("cannot set tar device")?;
        h.set_device_minor(0).context("cannot set tar device")?;
        h.set_cksum();
        tar.append(&h, e.data.as_slice())
            .with_context(|| format!("cannot add {full} to the tarball"))?;
    }
    let raw = tar.into_inner().context("cannot finish the tar archive")?;
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    gz.write_all(&raw).context("cannot gzip the tarball")?;
    gz.finish().context("cannot finish the gzip stream")
}

/// The file name `npm pack` gives a package: `@scope/name` -> `scope-name-<version>.tgz`.
pub fn tarball_name(package: &str, version: &str) -> String {
    let mangled = package.trim_start_matches('@').replace('/', "-");
    format!("{mangled}-{version}.tgz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_npm_pack() {
        assert_eq!(
            tarball_name("@kaelio/ktx", "0.1.0-rc.0"),
            "kaelio-ktx-0.1.0-rc.0.tgz"
        );
        assert_eq!(tarball_name("ktx", "1.0.0"), "ktx-1.0.0.tgz");
    }

    #[test]
    fn orders_package_json_first_then_bytewise() {
        let e = |p: &str| Entry {
            path: p.into(),
            data: vec![],
            executable: false,
        };
        let mut v = vec![
            e("python/x"),
            e("README.md"),
            e("package.json"),
            e("LICENSE"),
            e("bin/ktx.js"),
        ];
        sort_entries(&mut v);
        let paths: Vec<_> = v.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "package.json",
                "LICENSE",
                "README.md",
                "bin/ktx.js",
                "python/x"
            ]
        );
    }

    #[test]
    fn refuses_too_long_paths_and_duplicates() {
        let long = Entry {
            path: format!("bin/{}", "x".repeat(120)),
            data: vec![],
            executable: false,
        };
        let err = format!("{:#}", build(vec![long]).unwrap_err());
        assert!(err.contains("does not fit a ustar tar header"), "{err}");
        let e = Entry {
            path: "a".into(),
            data: vec![],
            executable: false,
        };
        assert!(build(vec![e.clone(), e]).is_err());
        // A long path that splits into prefix + name fits.
        let ok = Entry {
            path: format!("{}/{}", "d".repeat(120), "f".repeat(90)),
            data: b"x".to_vec(),
            executable: false,
        };
        let gz = build(vec![ok.clone()]).unwrap();
        // Read back: one ustar entry (no GNU long-name entry) whose prefix + name is the path.
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
        let paths: Vec<(String, bool)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let ustar = e.header().as_ustar().is_some();
                (e.path().unwrap().display().to_string(), ustar)
            })
            .collect();
        assert_eq!(paths, [(format!("package/{}", ok.path), true)]);
        // One byte more in the name part no longer fits.
        let too_long = Entry {
            path: format!("{}/{}", "d".repeat(120), "f".repeat(101)),
            ..ok
        };
        assert!(build(vec![too_long]).is_err());
    }

    #[test]
    fn gzip_header_has_no_name_mtime_zero_and_os_255() {
        let gz = build(vec![Entry {
            path: "package.json".into(),
            data: b"{}".to_vec(),
            executable: false,
        }])
        .unwrap();
        assert_eq!(
            &gz[..4],
            &[0x1f, 0x8b, 8, 0],
            "deflate, no FNAME/FEXTRA/FCOMMENT flags"
        );
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(gz[9], 255, "OS unknown");
    }
}
