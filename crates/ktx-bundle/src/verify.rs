//! Reading, verifying and installing a bundle dir.
//!
//! Order, for every asset: refuse a symlink or a non-file (opened with `O_NOFOLLOW`), compare
//! the size before reading a byte, hash while streaming (never reading past the declared
//! size), then check the signature over the manifest's exact bytes with the key its `keyId`
//! names. Any failure names the file. An install streams each asset into a temporary dir
//! next to the destination while hashing, and renames that dir into place only after
//! everything (the signature included) checked: a failed install leaves nothing behind.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::keys::{self, Keyring};
use crate::manifest::{is_safe_name, is_safe_version, Manifest, Problem};
use crate::{MANIFEST_FILE, MAX_MANIFEST_BYTES, SIGNATURE_BYTES, SIGNATURE_FILE};

/// What went wrong (stable; the CLI's `--json` shows it as `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleErrorKind {
    /// A file or dir could not be read or written.
    Io,
    /// `manifest.json` is malformed or breaks a rule, or does not match its dir.
    Manifest,
    /// The manifest's `keyId` is not a key this ktx knows.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// A file's size differs from the manifest's.
    Size,
    /// A file's sha256 differs from the manifest's.
    Hash,
    /// A path would leave the bundle dir.
    UnsafePath,
    /// A symlink (or other non-regular file) where a file or dir must be.
    Symlink,
    /// A destination holds something else.
    Conflict,
}

impl BundleErrorKind {
    /// The kebab-case name (`bad-signature`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BundleErrorKind::Io => "io",
            BundleErrorKind::Manifest => "manifest",
            BundleErrorKind::UnknownKey => "unknown-key",
            BundleErrorKind::BadSignature => "bad-signature",
            BundleErrorKind::Size => "size",
            BundleErrorKind::Hash => "hash",
            BundleErrorKind::UnsafePath => "unsafe-path",
            BundleErrorKind::Symlink => "symlink",
            BundleErrorKind::Conflict => "conflict",
        }
    }
}

/// A verification or install failure: the kind, the file it concerns, what happened and how
/// to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleError {
    /// What went wrong.
    pub kind: BundleErrorKind,
    /// The file (or dir) it concerns.
    pub file: PathBuf,
    /// What happened, as a sentence.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl BundleError {
    pub(crate) fn new(kind: BundleErrorKind, file: &Path, message: impl Into<String>) -> Self {
        let fix = match kind {
            BundleErrorKind::Io | BundleErrorKind::Conflict => {
                "Check the path and its permissions, then retry."
            }
            BundleErrorKind::UnknownKey => {
                "Use a bundle signed with a key this ktx knows (`ktx bundle list` shows the key ids), or upgrade ktx."
            }
            _ => "Do not use this bundle: get it again from its official source (reinstall ktx, or the registry it came from).",
        };
        BundleError {
            kind,
            file: file.to_path_buf(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// The same error with another fix.
    pub(crate) fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    fn io(file: &Path, what: &str, e: &io::Error) -> Self {
        BundleError::new(
            BundleErrorKind::Io,
            file,
            format!("cannot {what} {}: {e}", file.display()),
        )
    }
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for BundleError {}

/// A bundle dir as read: the parsed manifest and the exact bytes it was parsed from, and the
/// signature. Nothing in it is trusted until [`Bundle::verify`] succeeds.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle dir.
    pub dir: PathBuf,
    /// The parsed manifest.
    pub manifest: Manifest,
    manifest_bytes: Vec<u8>,
    signature: [u8; 64],
}

/// A bundle that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The bundle dir.
    pub dir: PathBuf,
    /// The manifest (signed).
    pub manifest: Manifest,
    /// The id of the key that signed it.
    pub key_id: String,
    /// True when that key is a development key.
    pub development: bool,
}

/// Opens `path` for reading without following a symlink, refusing anything but a regular
/// file; returns the file and its size (from the open file, so it is the file that is read).
fn open_regular(path: &Path) -> Result<(File, u64), BundleError> {
    // lstat first for a clear message; O_NOFOLLOW closes the race after it.
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(BundleError::new(
                BundleErrorKind::Symlink,
                path,
                format!(
                    "{} is a symlink; a bundle holds only regular files",
                    path.display()
                ),
            ))
        }
        Ok(_) => {}
        Err(e) => return Err(BundleError::io(path, "read", &e)),
    }
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    let file = ktx_base::fs::open_no_follow(&mut opts, path)
        .map_err(|e| BundleError::io(path, "open", &e))?;
    let meta = file
        .metadata()
        .map_err(|e| BundleError::io(path, "inspect", &e))?;
    if !meta.is_file() {
        return Err(BundleError::new(
            BundleErrorKind::Symlink,
            path,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok((file, meta.len()))
}

/// Reads a small file whole, after checking its size is at most `max` (and exactly `max`
/// when `exact`).
fn read_small(path: &Path, max: u64, exact: bool) -> Result<Vec<u8>, BundleError> {
    let (file, size) = open_regular(path)?;
    if size > max || (exact && size != max) {
        return Err(small_size_error(path, size, max, exact));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| BundleError::io(path, "read", &e))?;
    if bytes.len() as u64 != size {
        return Err(BundleError::new(
            BundleErrorKind::Size,
            path,
            format!("{} changed size while it was read", path.display()),
        ));
    }
    Ok(bytes)
}

/// Where a bundle's files are read from: a directory ([`DirSource`]), or an HTTP registry
/// (`crate::registry`). Every check stays in this module; a source only opens files and
/// states their sizes.
pub trait BundleSource {
    /// Where the file `name` of the bundle is, for messages (a path or a URL).
    fn location(&self, name: &str) -> PathBuf;
    /// Reads the small file `name` (the manifest, the signature) whole after checking its
    /// size is at most `max` (exactly `max` when `exact`).
    fn read_small(&self, name: &str, max: u64, exact: bool) -> Result<Vec<u8>, BundleError>;
    /// Opens the asset `name`: a reader of its bytes and the size the source states (checked
    /// against the manifest before a byte is read).
    fn open_asset(&self, name: &str) -> Result<(Box<dyn Read>, u64), BundleError>;
}

/// A bundle dir on disk: every file opened without following symlinks.
#[derive(Debug, Clone)]
pub struct DirSource(pub PathBuf);

impl BundleSource for DirSource {
    fn location(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn read_small(&self, name: &str, max: u64, exact: bool) -> Result<Vec<u8>, BundleError> {
        read_small(&self.0.join(name), max, exact)
    }
    fn open_asset(&self, name: &str) -> Result<(Box<dyn Read>, u64), BundleError> {
        let (file, size) = open_regular(&self.0.join(name))?;
        Ok((Box::new(file), size))
    }
}

/// A size-check error for a file whose size is wrong (`what`: at most / exactly `max`).
pub(crate) fn small_size_error(path: &Path, size: u64, max: u64, exact: bool) -> BundleError {
    let want = if exact {
        format!("exactly {max}")
    } else {
        format!("at most {max}")
    };
    BundleError::new(
        BundleErrorKind::Size,
        path,
        format!("{} is {size} bytes, expected {want}", path.display()),
    )
}

/// Reads `dir/manifest.json` and `dir/manifest.sig` and checks the manifest's own rules. A
/// symlinked bundle dir is refused.
pub fn read_bundle(dir: &Path) -> Result<Bundle, BundleError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(BundleError::new(
                BundleErrorKind::Symlink,
                dir,
                format!("the bundle dir {} is a symlink", dir.display()),
            ))
        }
        Ok(m) if !m.is_dir() => {
            return Err(BundleError::new(
                BundleErrorKind::Io,
                dir,
                format!("{} is not a directory", dir.display()),
            ))
        }
        Ok(_) => {}
        Err(e) => return Err(BundleError::io(dir, "read the bundle dir", &e)),
    }
    read_from(&DirSource(dir.to_path_buf()), dir)
}

/// Reads the manifest and the signature of the bundle at `location` from `source` and checks
/// the manifest's own rules.
pub fn read_from(source: &dyn BundleSource, location: &Path) -> Result<Bundle, BundleError> {
    let manifest_path = source.location(MANIFEST_FILE);
    let manifest_bytes = source.read_small(MANIFEST_FILE, MAX_MANIFEST_BYTES, false)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
        BundleError::new(
            BundleErrorKind::Manifest,
            &manifest_path,
            format!(
                "{} is not a valid bundle manifest: {e}",
                manifest_path.display()
            ),
        )
    })?;
    if let Some(problem) = manifest.problem() {
        let (kind, problem) = match problem {
            Problem::UnsafePath(p) => (BundleErrorKind::UnsafePath, p),
            Problem::Invalid(p) => (BundleErrorKind::Manifest, p),
        };
        return Err(BundleError::new(
            kind,
            &manifest_path,
            format!("{}: {problem}", manifest_path.display()),
        ));
    }
    let sig = source.read_small(SIGNATURE_FILE, SIGNATURE_BYTES, true)?;
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&sig);
    Ok(Bundle {
        dir: location.to_path_buf(),
        manifest,
        manifest_bytes,
        signature,
    })
}

impl Bundle {
    /// The exact bytes of `manifest.json`.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// Checks that the manifest names the dir it is in (`.../<name>/<version>/`): a manifest
    /// moved to another bundle's dir is refused.
    pub fn check_location(&self) -> Result<(), BundleError> {
        let version = self.dir.file_name().and_then(|n| n.to_str());
        let name = self
            .dir
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str());
        if name != Some(self.manifest.name.as_str())
            || version != Some(self.manifest.version.as_str())
        {
            return Err(BundleError::new(
                BundleErrorKind::Manifest,
                &self.dir.join(MANIFEST_FILE),
                format!(
                    "{} describes {}@{}, but it is in {}",
                    self.dir.join(MANIFEST_FILE).display(),
                    self.manifest.name,
                    self.manifest.version,
                    self.dir.display()
                ),
            ));
        }
        Ok(())
    }

    /// Verifies every asset and the signature; each asset is read from `source` and its
    /// bytes are also written to the sink `copy_to(path)` returns (`None`: only verify).
    fn verify_with(
        &self,
        keyring: &Keyring,
        source: &dyn BundleSource,
        mut copy_to: impl FnMut(&str) -> Result<Option<Box<dyn Write>>, BundleError>,
    ) -> Result<Verified, BundleError> {
        let key = self.key(keyring)?;
        for entry in &self.manifest.files {
            let path = source.location(&entry.path);
            // The size the source states (a file's length, a Content-Length), before a byte
            // is read.
            let (reader, size) = source.open_asset(&entry.path)?;
            if size != entry.size {
                return Err(size_error(&path, size, entry.size));
            }
            let mut sink = copy_to(&entry.path)?;
            let (read, digest) = hash_stream(reader.take(entry.size + 1), sink.as_deref_mut())
                .map_err(|e| BundleError::io(&path, "read", &e))?;
            if read != entry.size {
                return Err(BundleError::new(
                    BundleErrorKind::Size,
                    &path,
                    format!(
                        "{} changed size while it was read ({read} bytes, the manifest says {})",
                        path.display(),
                        entry.size
                    ),
                ));
            }
            if digest != entry.sha256 {
                return Err(BundleError::new(
                    BundleErrorKind::Hash,
                    &path,
                    format!(
                        "{} has sha256 {digest}, the manifest says {}",
                        path.display(),
                        entry.sha256
                    ),
                ));
            }
        }
        self.check_signature(key)?;
        Ok(Verified {
            dir: self.dir.clone(),
            manifest: self.manifest.clone(),
            key_id: key.id.clone(),
            development: key.development,
        })
    }

    /// Verifies every asset (size, then streamed sha256) and then the signature.
    pub fn verify(&self, keyring: &Keyring) -> Result<Verified, BundleError> {
        self.verify_with(keyring, &DirSource(self.dir.clone()), |_| Ok(None))
    }

    /// The check of a bundle that was fully verified when it was installed (its copy was
    /// hashed while it was written into a private dir): the key, the signature over the
    /// manifest, and each asset a regular file of the signed size. No asset is read, so it
    /// costs the same for a 13 MB asset as for a small one; a consumer that needs the bytes
    /// themselves checks them against the signed sha256 when it reads them.
    pub fn verify_signed_sizes(&self, keyring: &Keyring) -> Result<Verified, BundleError> {
        let key = self.key(keyring)?;
        self.check_signature(key)?;
        for entry in &self.manifest.files {
            let path = self.dir.join(&entry.path);
            let (_, size) = open_regular(&path)?;
            if size != entry.size {
                return Err(size_error(&path, size, entry.size));
            }
        }
        Ok(Verified {
            dir: self.dir.clone(),
            manifest: self.manifest.clone(),
            key_id: key.id.clone(),
            development: key.development,
        })
    }

    fn key<'k>(&self, keyring: &'k Keyring) -> Result<&'k crate::KeyInfo, BundleError> {
        let manifest_path = self.dir.join(MANIFEST_FILE);
        keyring.get(&self.manifest.key_id).ok_or_else(|| {
            BundleError::new(
                BundleErrorKind::UnknownKey,
                &manifest_path,
                format!(
                    "{} is signed with key {:?}, which this ktx does not know (known: {})",
                    manifest_path.display(),
                    self.manifest.key_id,
                    keyring
                        .keys()
                        .iter()
                        .map(|k| k.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    fn check_signature(&self, key: &crate::KeyInfo) -> Result<(), BundleError> {
        if keys::signature_ok(key, &self.manifest_bytes, &self.signature) {
            return Ok(());
        }
        let sig_path = self.dir.join(SIGNATURE_FILE);
        Err(BundleError::new(
            BundleErrorKind::BadSignature,
            &sig_path,
            format!(
                "{} is not a valid signature of {} by key {}",
                sig_path.display(),
                self.dir.join(MANIFEST_FILE).display(),
                key.id
            ),
        ))
    }
}

fn size_error(path: &Path, size: u64, want: u64) -> BundleError {
    BundleError::new(
        BundleErrorKind::Size,
        path,
        format!(
            "{} is {size} bytes, the manifest says {want}",
            path.display()
        ),
    )
}

/// Reads `reader` to its end, hashing and copying to `sink`; returns the byte count and the
/// lowercase hex sha256.
fn hash_stream(
    mut reader: impl Read,
    mut sink: Option<&mut (dyn Write + '_)>,
) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        if let Some(s) = sink.as_deref_mut() {
            s.write_all(&buf[..n])?;
        }
        total += n as u64;
    }
    Ok((total, crate::hex::encode(&hasher.finalize())))
}

/// Reads and fully verifies the bundle in `dir` (which must be `.../<name>/<version>/`).
pub fn verify_dir(dir: &Path, keyring: &Keyring) -> Result<Verified, BundleError> {
    let bundle = read_bundle(dir)?;
    bundle.check_location()?;
    bundle.verify(keyring)
}

/// A bundle dir found under a bundles dir: `<bundles>/<name>/<version>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The dir's name.
    pub name: String,
    /// The version dir's name.
    pub version: String,
    /// `<bundles>/<name>/<version>`.
    pub dir: PathBuf,
}

/// Every `<name>/<version>/` under `bundles` (sorted), skipping hidden entries (an install's
/// temporary dirs) and names that are not valid bundle names or versions. A missing
/// `bundles` dir holds none.
pub fn find_bundles(bundles: &Path) -> Result<Vec<Found>, BundleError> {
    let mut found = Vec::new();
    for name in sorted_entries(bundles)? {
        if !is_safe_name(&name) {
            continue;
        }
        let name_dir = bundles.join(&name);
        for version in sorted_entries(&name_dir)? {
            if is_safe_version(&version) {
                found.push(Found {
                    dir: name_dir.join(&version),
                    name: name.clone(),
                    version,
                });
            }
        }
    }
    Ok(found)
}

fn sorted_entries(dir: &Path) -> Result<Vec<String>, BundleError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(e) => return Err(BundleError::io(dir, "list", &e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| BundleError::io(dir, "list", &e))?;
        if let Some(n) = entry.file_name().to_str() {
            if !n.starts_with('.') {
                names.push(n.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The outcome of [`install`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The verified bundle, at its installed dir.
    pub verified: Verified,
    /// True when the same bundle (identical signed manifest) was already installed there.
    pub already_installed: bool,
}

fn create_dir_private(dir: &Path) -> Result<(), BundleError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| BundleError::io(dir, "create the directory", &e))
}

/// Installs the bundle in `src` (a `.../<name>/<version>/` dir) into
/// `<bundles>/<name>/<version>/`, verifying while copying: each asset is streamed into a
/// temporary dir next to the destination while it is hashed, the signature is checked, and
/// only then is the temporary dir renamed into place. On any failure nothing is left.
///
/// An existing destination that verifies with the same signed manifest is kept
/// (`already_installed`); anything else there is a [`BundleErrorKind::Conflict`].
pub fn install(src: &Path, bundles: &Path, keyring: &Keyring) -> Result<Installed, BundleError> {
    install_from(&DirSource(src.to_path_buf()), src, bundles, keyring)
}

/// [`install`] from any [`BundleSource`]; `location` is the bundle's `.../<name>/<version>`
/// (a dir or a URL), which the manifest must name.
pub fn install_from(
    source: &dyn BundleSource,
    location: &Path,
    bundles: &Path,
    keyring: &Keyring,
) -> Result<Installed, BundleError> {
    let bundle = read_from(source, location)?;
    bundle.check_location()?;
    let m = &bundle.manifest;
    let name_dir = bundles.join(&m.name);
    let dest = name_dir.join(&m.version);
    if fs::symlink_metadata(&dest).is_ok() {
        return match read_bundle(&dest).and_then(|b| {
            b.check_location()?;
            let v = b.verify(keyring)?;
            Ok((b, v))
        }) {
            Ok((existing, v)) if existing.manifest_bytes == bundle.manifest_bytes => {
                // Still check the source: installing a broken source must fail even when a
                // good copy is already in place.
                bundle.verify_with(keyring, source, |_| Ok(None))?;
                Ok(Installed {
                    verified: v,
                    already_installed: true,
                })
            }
            Ok(_) => Err(BundleError::new(
                BundleErrorKind::Conflict,
                &dest,
                format!(
                    "{} already holds a different {}@{}",
                    dest.display(),
                    m.name,
                    m.version
                ),
            )),
            Err(e) => Err(BundleError::new(
                BundleErrorKind::Conflict,
                &dest,
                format!(
                    "{} already exists and does not verify ({}); remove it and install again",
                    dest.display(),
                    e.message
                ),
            )),
        };
    }
    create_dir_private(&name_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", m.version))
        .suffix(".tmp")
        .tempdir_in(&name_dir)
        .map_err(|e| BundleError::io(&name_dir, "create a temporary dir in", &e))?;
    let tmp_path = tmp.path().to_path_buf();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp_path, fs::Permissions::from_mode(0o700))
            .map_err(|e| BundleError::io(&tmp_path, "set the mode of", &e))?;
    }
    let mut verified = bundle.verify_with(keyring, source, |rel| {
        let path = tmp_path.join(rel);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        let f = opts
            .open(&path)
            .map_err(|e| BundleError::io(&path, "create", &e))?;
        Ok(Some(Box::new(SyncOnDrop(f)) as Box<dyn Write>))
    })?;
    for (file, bytes) in [
        (MANIFEST_FILE, &bundle.manifest_bytes[..]),
        (SIGNATURE_FILE, &bundle.signature[..]),
    ] {
        let path = tmp_path.join(file);
        fs::write(&path, bytes).map_err(|e| BundleError::io(&path, "write", &e))?;
    }
    ktx_base::fs::sync_dir(&tmp_path);
    fs::rename(&tmp_path, &dest).map_err(|e| BundleError::io(&dest, "move into place", &e))?;
    // The dir now lives at `dest`: do not let the TempDir guard remove anything.
    let _ = tmp.keep();
    ktx_base::fs::sync_dir(&name_dir);
    verified.dir = dest;
    Ok(Installed {
        verified,
        already_installed: false,
    })
}

/// A file that is fsynced when the writer is dropped (the copy of an asset).
struct SyncOnDrop(File);

impl Write for SyncOnDrop {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Drop for SyncOnDrop {
    fn drop(&mut self) {
        let _ = self.0.sync_all();
    }
}
