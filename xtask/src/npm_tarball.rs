//! npm package tarballs: [`build`] writes them the way `npm pack` does (a `package/` prefix,
//! files only, package.json first then the rest sorted bytewise, mtime 1985-10-26T08:15:00Z,
//! uid/gid 0, empty owner names, modes 0644/0755, ustar headers, gzip with no name, mtime 0
//! and OS 255); [`read`] and [`read_files`] are the one reader of them (release readiness,
//! artifacts-verify and the pack tests all read through it).

use anyhow::{bail, Context, Result};
use flate2::{Compression, GzBuilder};
use std::collections::BTreeMap;
use std::io::{Read, Write};

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

/// One entry of a read npm tarball.
#[derive(Debug, Clone)]
pub struct TarEntry {
    /// Path inside the package, without the `package/` prefix.
    pub path: String,
    /// Unix mode bits.
    pub mode: u32,
    /// The raw tar header (entry type, owners, mtime...).
    pub header: tar::Header,
    /// Contents.
    pub data: Vec<u8>,
}

impl TarEntry {
    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.header.entry_type().is_file()
    }
}

/// Every entry of an npm `.tgz`, in archive order. Refuses an entry outside `package/`.
pub fn read(tgz: &[u8]) -> Result<Vec<TarEntry>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut out = Vec::new();
    for entry in archive.entries().context("not a gzipped tar archive")? {
        let mut entry = entry.context("corrupt tar entry")?;
        let full = entry
            .path()
            .context("tar entry with an unreadable path")?
            .to_string_lossy()
            .into_owned();
        let Some(rel) = full.strip_prefix("package/") else {
            bail!("tar entry `{full}` is outside `package/`");
        };
        let path = rel.to_string();
        let header = entry.header().clone();
        let mode = header.mode().context("tar entry without a mode")?;
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .with_context(|| format!("cannot read tar entry `{full}`"))?;
        out.push(TarEntry {
            path,
            mode,
            header,
            data,
        });
    }
    Ok(out)
}

/// The regular files of an npm `.tgz`, keyed by path without the `package/` prefix.
pub fn read_files(tgz: &[u8]) -> Result<BTreeMap<String, TarEntry>> {
    Ok(read(tgz)?
        .into_iter()
        .filter(TarEntry::is_file)
        .map(|e| (e.path.clone(), e))
        .collect())
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
        let paths: Vec<(String, bool)> = read(&gz)
            .unwrap()
            .into_iter()
            .map(|e| (e.path, e.header.as_ustar().is_some()))
            .collect();
        assert_eq!(paths, [(ok.path.clone(), true)]);
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

    #[test]
    fn reads_back_what_it_builds_and_refuses_entries_outside_package() {
        let gz = build(vec![
            Entry {
                path: "bin/ktx.js".into(),
                data: b"js".to_vec(),
                executable: true,
            },
            Entry {
                path: "package.json".into(),
                data: b"{}".to_vec(),
                executable: false,
            },
        ])
        .unwrap();
        let entries = read(&gz).unwrap();
        let rows: Vec<(&str, u32, &[u8])> = entries
            .iter()
            .map(|e| (e.path.as_str(), e.mode, e.data.as_slice()))
            .collect();
        assert_eq!(
            rows,
            [
                ("package.json", 0o644, &b"{}"[..]),
                ("bin/ktx.js", 0o755, &b"js"[..])
            ]
        );
        assert_eq!(read_files(&gz).unwrap().len(), 2);
        let mut raw = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("elsewhere/x").unwrap();
        h.set_size(0);
        h.set_cksum();
        raw.append(&h, &b""[..]).unwrap();
        let mut gz = GzBuilder::new().write(Vec::new(), Compression::fast());
        gz.write_all(&raw.into_inner().unwrap()).unwrap();
        let err = format!("{:#}", read(&gz.finish().unwrap()).unwrap_err());
        assert!(err.contains("`elsewhere/x` is outside `package/`"), "{err}");
        assert!(read(b"not a tarball").is_err());
    }
}
