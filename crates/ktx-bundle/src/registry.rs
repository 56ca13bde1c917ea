//! A bundle registry over HTTP: the bundle `NAME@VERSION` of the registry `URL` is the dir
//! `URL/NAME/VERSION/` (`manifest.json`, `manifest.sig`, the assets), as a static file server
//! serves a registry dir. Read with ureq; every check stays in [`crate::verify`]: this source
//! only fetches files and states their sizes from `Content-Length`, which is compared with the
//! manifest before a byte of the body is read (a response without one is refused).
//!
//! Only `http://` for now: ktx builds no TLS stack yet (rustls' crypto needs a C compiler for
//! every release target). The signature makes an `http://` copy exactly as trustworthy as
//! the bundle's key; an `https://` URL is refused with the way round it (download the dir,
//! `--registry DIR`).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use crate::verify::{small_size_error, BundleSource};
use crate::{BundleError, BundleErrorKind};

/// How long one file may take to arrive (the whole response).
pub const FILE_TIMEOUT: Duration = Duration::from_secs(600);

/// Whether `registry` names an HTTP(S) registry rather than a dir.
pub fn is_url(registry: &str) -> bool {
    let lower = registry.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The bundle `name@version` of an HTTP registry.
pub struct HttpSource {
    base: String,
    agent: ureq::Agent,
}

impl HttpSource {
    /// The source of `name@version` in the registry at `registry` (an `http://` URL).
    pub fn new(registry: &str, name: &str, version: &str) -> Result<HttpSource, BundleError> {
        let base = format!("{}/{name}/{version}", registry.trim_end_matches('/'));
        if registry.to_ascii_lowercase().starts_with("https://") {
            return Err(BundleError::new(
                BundleErrorKind::Io,
                &PathBuf::from(&base),
                format!(
                    "cannot read {registry}: this ktx has no TLS support yet, so it reads registries over http:// only"
                ),
            )
            .with_fix(format!(
                "Download the dir {base}/ (manifest.json, manifest.sig and its files) and pass `--registry DIR` (the dir holding {name}/{version}/), or use an http:// mirror: the signature is checked either way."
            )));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(FILE_TIMEOUT))
            .build()
            .new_agent();
        Ok(HttpSource { base, agent })
    }

    /// `URL/NAME/VERSION`, the bundle's location (its last two parts are what the manifest
    /// must name).
    pub fn bundle_location(&self) -> PathBuf {
        PathBuf::from(&self.base)
    }

    /// GETs `name`: the body and its `Content-Length`.
    fn get(&self, name: &str) -> Result<(ureq::Body, u64), BundleError> {
        let url = format!("{}/{name}", self.base);
        let at = PathBuf::from(&url);
        let resp = self.agent.get(&url).call().map_err(|e| {
            let what = match &e {
                ureq::Error::StatusCode(code) => format!("the registry answered HTTP {code}"),
                other => other.to_string(),
            };
            BundleError::new(
                BundleErrorKind::Io,
                &at,
                format!("cannot fetch {url}: {what}"),
            )
        })?;
        let body = resp.into_body();
        let Some(len) = body.content_length() else {
            return Err(BundleError::new(
                BundleErrorKind::Size,
                &at,
                format!("{url} came without a Content-Length: its size cannot be checked before it is read"),
            ));
        };
        Ok((body, len))
    }
}

impl BundleSource for HttpSource {
    fn location(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}/{name}", self.base))
    }

    fn read_small(&self, name: &str, max: u64, exact: bool) -> Result<Vec<u8>, BundleError> {
        let at = self.location(name);
        let (body, len) = self.get(name)?;
        if len > max || (exact && len != max) {
            return Err(small_size_error(&at, len, max, exact));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        body.into_with_config()
            .limit(max + 1)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| {
                BundleError::new(
                    BundleErrorKind::Io,
                    &at,
                    format!("cannot read {}: {e}", at.display()),
                )
            })?;
        if bytes.len() as u64 != len {
            return Err(BundleError::new(
                BundleErrorKind::Size,
                &at,
                format!(
                    "{} sent {} bytes, its Content-Length said {len}",
                    at.display(),
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    fn open_asset(&self, name: &str) -> Result<(Box<dyn Read>, u64), BundleError> {
        let (body, len) = self.get(name)?;
        // One byte more than stated, so a longer body shows as a size error, not a cut one.
        let reader = body.into_with_config().limit(len + 1).reader();
        Ok((Box::new(reader), len))
    }
}
