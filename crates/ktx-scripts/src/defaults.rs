//! The default scripts ktx ships: versioned in this repository (`crates/ktx-scripts/defaults/`,
//! with every earlier shipped version under `defaults/history/`) and compiled into the binary.
//!
//! `ktx script seed` (and `ktx demo`) writes the missing ones. A project's copy is replaced by
//! the current version only when it is byte-for-byte a version ktx shipped (its sha256 equals
//! the current or an earlier one): a copy the user changed is kept and reported.

use serde::Serialize;

use crate::files;

/// One shipped default script.
#[derive(Debug, Clone, Copy)]
pub struct DefaultScript {
    /// Its slug (file `scripts/<slug>.py`).
    pub slug: &'static str,
    /// The current version's text.
    pub source: &'static str,
    /// The texts of every earlier shipped version.
    pub previous: &'static [&'static str],
}

impl DefaultScript {
    /// Whether `bytes` is a version ktx shipped (current or earlier).
    pub fn is_shipped(&self, bytes: &[u8]) -> bool {
        let hash = files::sha256_hex(bytes);
        std::iter::once(self.source)
            .chain(self.previous.iter().copied())
            .any(|s| files::sha256_hex(s.as_bytes()) == hash)
    }
}

/// Every default script, in slug order. Adding a version: move the current file to
/// `defaults/history/<slug>.<n>.py`, list it in `previous`, and edit the current one.
pub const DEFAULTS: &[DefaultScript] = &[
    DefaultScript {
        slug: "format_number",
        source: include_str!("../defaults/format_number.py"),
        previous: &[include_str!("../defaults/history/format_number.1.py")],
    },
    DefaultScript {
        slug: "slugify",
        source: include_str!("../defaults/slugify.py"),
        previous: &[],
    },
    DefaultScript {
        slug: "top_rows",
        source: include_str!("../defaults/top_rows.py"),
        previous: &[],
    },
];

/// What `seed` did, per slug.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    /// Written because the project had no such file.
    pub added: Vec<String>,
    /// Replaced: the project's copy was an earlier shipped version.
    pub updated: Vec<String>,
    /// Already the current version.
    pub current: Vec<String>,
    /// Left alone: the project's copy differs from every shipped version.
    pub kept: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontmatter;

    #[test]
    fn every_default_parses_cleanly_with_a_fixed_id() {
        for d in DEFAULTS {
            let p = frontmatter::parse(d.source, d.slug);
            assert_eq!(p.warnings, vec![], "{}", d.slug);
            let id = p.meta.id.expect("a shipped default carries its id");
            assert!(id.starts_with("ktx-default-"), "{id}");
            for old in d.previous {
                let p = frontmatter::parse(old, d.slug);
                assert_eq!(p.meta.id.as_deref(), Some(id.as_str()), "{}", d.slug);
                assert_ne!(*old, d.source);
            }
            assert!(d.is_shipped(d.source.as_bytes()));
            assert!(!d.is_shipped(format!("{}\n# mine\n", d.source).as_bytes()));
        }
    }
}
