//! `ktx bundle list|verify|install`: the signed bundles ktx ships (`<package>/bundles/`, or
//! `KTX_BUNDLE_DIR`) and the ones installed under the runtime root
//! (`<root>/<ktx-version>/bundles/<name>/<version>/`). Verification and install are
//! `ktx_bundle`'s; this module finds the dirs, checks the runtime root is trusted, and prints.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use ktx_bundle::{BundleError, Keyring, Verified};
use ktx_runtime::Layout;

use crate::output::{emit, emit_json};
use crate::{CliError, GlobalArgs};

/// List, verify and install signed bundles (e.g. the sandboxed Python, lang-python)
///
/// A bundle is a directory <name>/<version>/ with manifest.json (each file's sha256 and
/// size, the signing key's id), manifest.sig (ed25519 over the manifest's exact bytes) and its
/// files. ktx knows the public keys; a bundle signed with the development key is marked so.
/// Bundles come with ktx (next to the binary, or KTX_BUNDLE_DIR) or are installed under the
/// runtime root with `ktx bundle install`.
///
/// Examples:
///   ktx bundle list
///   ktx bundle verify lang-python@0.1.0 --json
///   ktx bundle install lang-python@0.1.0 --registry ./bundles
///   ktx bundle install lang-python@0.1.0 --registry http://mirror.internal/ktx-bundles
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// List the bundles that ship with ktx and the installed ones (no verification).
    List {
        /// Print JSON: {schemaVersion, bundles: [{name, version, location, dir, keyId, development, error}]}.
        #[arg(long)]
        json: bool,
    },
    /// Verify bundles: every file's size, then its sha256 while reading, then the signature.
    /// Exits 1 when one fails.
    Verify {
        /// The bundle to verify (default: every bundle `list` shows).
        #[arg(value_name = "NAME@VERSION")]
        bundle: Option<String>,
        /// Print JSON: {schemaVersion, ok, bundles: [{name, version, location, dir, ok, keyId, development, files, error}]}.
        #[arg(long)]
        json: bool,
    },
    /// Copy a bundle from a registry (a dir or an http:// URL) into the runtime root,
    /// verifying while copying: each file's size (Content-Length over HTTP) before reading,
    /// its sha256 while streaming, then the signature. Nothing is installed unless every check
    /// passes.
    Install {
        /// The bundle to install.
        #[arg(value_name = "NAME@VERSION")]
        bundle: String,
        /// A directory holding <name>/<version>/ bundle dirs, or an http:// URL serving the
        /// same layout (URL/<name>/<version>/manifest.json, ...).
        #[arg(long, value_name = "DIR|URL")]
        registry: String,
        /// Print JSON: {schemaVersion, name, version, dir, keyId, development, alreadyInstalled}.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `ktx bundle ...`.
pub fn run(args: Args, _global: &GlobalArgs) -> Result<ExitCode, CliError> {
    match args.command {
        Sub::List { json } => list(json),
        Sub::Verify { bundle, json } => verify(bundle.as_deref(), json),
        Sub::Install {
            bundle,
            registry,
            json,
        } => install(&bundle, &registry, json),
    }
}

/// Where a bundle was found.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum Location {
    /// Shipped with ktx.
    Package,
    /// Installed under the runtime root.
    Installed,
}

struct Candidate {
    location: Location,
    found: ktx_bundle::Found,
}

/// `NAME@VERSION`, both checked against the bundle naming rules.
fn parse_spec(spec: &str) -> Result<(String, String), CliError> {
    let usage = || {
        CliError {
        code: 2,
        message: format!(
            "{spec:?} is not NAME@VERSION (e.g. lang-python@0.1.0): names are [a-z0-9-], versions start with a digit"
        ),
    }
    };
    let (name, version) = spec.split_once('@').ok_or_else(usage)?;
    if !ktx_bundle::manifest::is_safe_name(name) || !ktx_bundle::manifest::is_safe_version(version)
    {
        return Err(usage());
    }
    Ok((name.to_string(), version.to_string()))
}

fn bundle_error(e: BundleError) -> CliError {
    CliError::failure(format!("{}\n  {}", e.message, e.fix))
}

/// Every bundle dir, shipped ones first.
fn candidates() -> Result<Vec<Candidate>, CliError> {
    let mut out = Vec::new();
    if let Some(dir) = ktx_bundle::package_bundles_dir() {
        for found in ktx_bundle::find_bundles(&dir).map_err(bundle_error)? {
            out.push(Candidate {
                location: Location::Package,
                found,
            });
        }
    }
    let layout = Layout::from_env()?;
    let dir = ktx_runner::bundles::installed_dir(&layout)?;
    for found in ktx_bundle::find_bundles(&dir).map_err(bundle_error)? {
        out.push(Candidate {
            location: Location::Installed,
            found,
        });
    }
    Ok(out)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorJson {
    kind: &'static str,
    file: String,
    message: String,
    fix: String,
}

impl From<&BundleError> for ErrorJson {
    fn from(e: &BundleError) -> Self {
        ErrorJson {
            kind: e.kind.as_str(),
            file: e.file.display().to_string(),
            message: e.message.clone(),
            fix: e.fix.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListEntry {
    name: String,
    version: String,
    location: Location,
    dir: String,
    key_id: Option<String>,
    development: Option<bool>,
    error: Option<ErrorJson>,
}

/// "signed by KEY" with a DEVELOPMENT mark.
fn signer(key_id: &str, development: bool) -> String {
    if development {
        format!("signed by {key_id} (DEVELOPMENT key)")
    } else {
        format!("signed by {key_id}")
    }
}

fn list(json: bool) -> Result<ExitCode, CliError> {
    let ring = Keyring::builtin();
    let mut entries = Vec::new();
    for c in candidates()? {
        let read = ktx_bundle::read_bundle(&c.found.dir);
        let (key_id, development, error) = match &read {
            Ok(b) => {
                let dev = ring.get(&b.manifest.key_id).map(|k| k.development);
                (Some(b.manifest.key_id.clone()), dev, None)
            }
            Err(e) => (None, None, Some(ErrorJson::from(e))),
        };
        entries.push(ListEntry {
            name: c.found.name,
            version: c.found.version,
            location: c.location,
            dir: c.found.dir.display().to_string(),
            key_id,
            development,
            error,
        });
    }
    if json {
        #[derive(Serialize)]
        struct Doc {
            bundles: Vec<ListEntry>,
        }
        emit_json(&Doc { bundles: entries })?;
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        emit("no bundles (none ship with this ktx, none are installed)\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for e in &entries {
        let what = match (&e.key_id, &e.error) {
            (_, Some(err)) => format!("unreadable: {}", err.message),
            (Some(k), None) => match e.development {
                Some(dev) => signer(k, dev),
                None => format!("signed by unknown key {k}"),
            },
            (None, None) => String::new(),
        };
        let location = match e.location {
            Location::Package => "package",
            Location::Installed => "installed",
        };
        text.push_str(&format!(
            "{}@{}  {location}  {what}  {}\n",
            e.name, e.version, e.dir
        ));
    }
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifyEntry {
    name: String,
    version: String,
    location: Location,
    dir: String,
    ok: bool,
    key_id: Option<String>,
    development: Option<bool>,
    files: Vec<ktx_bundle::FileEntry>,
    error: Option<ErrorJson>,
}

fn verify(spec: Option<&str>, json: bool) -> Result<ExitCode, CliError> {
    let wanted = spec.map(parse_spec).transpose()?;
    let ring = Keyring::builtin();
    let mut all = candidates()?;
    if let Some((name, version)) = &wanted {
        all.retain(|c| &c.found.name == name && &c.found.version == version);
        if all.is_empty() {
            return Err(CliError::failure(format!(
                "no bundle {name}@{version}: `ktx bundle list` shows the bundles there are; \
                 install one with `ktx bundle install {name}@{version} --registry DIR`"
            )));
        }
    }
    let mut entries = Vec::new();
    for c in all {
        let result: Result<Verified, BundleError> = ktx_bundle::verify_dir(&c.found.dir, &ring);
        let entry = match result {
            Ok(v) => VerifyEntry {
                name: c.found.name,
                version: c.found.version,
                location: c.location,
                dir: c.found.dir.display().to_string(),
                ok: true,
                key_id: Some(v.key_id),
                development: Some(v.development),
                files: v.manifest.files,
                error: None,
            },
            Err(e) => VerifyEntry {
                name: c.found.name,
                version: c.found.version,
                location: c.location,
                dir: c.found.dir.display().to_string(),
                ok: false,
                key_id: None,
                development: None,
                files: Vec::new(),
                error: Some(ErrorJson::from(&e)),
            },
        };
        entries.push(entry);
    }
    let ok = entries.iter().all(|e| e.ok);
    if json {
        #[derive(Serialize)]
        struct Doc {
            ok: bool,
            bundles: Vec<VerifyEntry>,
        }
        emit_json(&Doc {
            ok,
            bundles: entries,
        })?;
    } else if entries.is_empty() {
        emit("no bundles to verify (none ship with this ktx, none are installed)\n")?;
    } else {
        let mut text = String::new();
        for e in &entries {
            match (&e.error, &e.key_id) {
                (Some(err), _) => text.push_str(&format!(
                    "FAIL {}@{}: {}\n  {}\n",
                    e.name, e.version, err.message, err.fix
                )),
                (None, Some(k)) => text.push_str(&format!(
                    "ok   {}@{}: {} files, {}  {}\n",
                    e.name,
                    e.version,
                    e.files.len(),
                    signer(k, e.development.unwrap_or(true)),
                    e.dir
                )),
                (None, None) => {}
            }
        }
        emit(&text)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn install(spec: &str, registry: &str, json: bool) -> Result<ExitCode, CliError> {
    let (name, version) = parse_spec(spec)?;
    let layout = Layout::from_env()?;
    // Under bundles.lock, into a private temporary dir, renamed into place after every check.
    let installed = if ktx_bundle::registry::is_url(registry) {
        let source = ktx_bundle::registry::HttpSource::new(registry, &name, &version)
            .map_err(bundle_error)?;
        let at = source.bundle_location();
        ktx_runner::bundles::install_locked(&layout, &source, &at, &name)?
    } else {
        let registry = Path::new(registry);
        let src = registry.join(&name).join(&version);
        if std::fs::symlink_metadata(&src).is_err() {
            return Err(CliError::failure(format!(
                "the registry {} has no {name}@{version} (no directory {})",
                registry.display(),
                src.display()
            )));
        }
        let source = ktx_bundle::DirSource(src.clone());
        ktx_runner::bundles::install_locked(&layout, &source, &src, &name)?
    };
    let v = &installed.verified;
    if json {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Doc<'a> {
            name: &'a str,
            version: &'a str,
            dir: String,
            key_id: &'a str,
            development: bool,
            already_installed: bool,
        }
        emit_json(&Doc {
            name: &v.manifest.name,
            version: &v.manifest.version,
            dir: v.dir.display().to_string(),
            key_id: &v.key_id,
            development: v.development,
            already_installed: installed.already_installed,
        })?;
    } else {
        let verb = if installed.already_installed {
            "already installed"
        } else {
            "installed"
        };
        emit(&format!(
            "{verb} {}@{} ({}) in {}\n",
            v.manifest.name,
            v.manifest.version,
            signer(&v.key_id, v.development),
            v.dir.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
