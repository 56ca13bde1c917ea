//! Runtime features: `core` (always installed) and `local-embeddings` (an extra of the wheel).

use std::fmt;

/// A feature of the Python runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    /// The semantic layer (sqlglot, pyyaml). Always installed.
    Core,
    /// Local sentence embeddings (the wheel's `local-embeddings` extra).
    LocalEmbeddings,
}

impl Feature {
    /// Every feature, in canonical order.
    pub const ALL: [Feature; 2] = [Feature::Core, Feature::LocalEmbeddings];

    /// The stable name: `core` or `local-embeddings`.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Core => "core",
            Feature::LocalEmbeddings => "local-embeddings",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The wheel extra that provides this feature, if any.
    pub fn extra(self) -> Option<&'static str> {
        match self {
            Feature::Core => None,
            Feature::LocalEmbeddings => Some("local-embeddings"),
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `features` plus `core`, deduplicated, in canonical order.
pub fn normalize(features: &[Feature]) -> Vec<Feature> {
    let mut out: Vec<Feature> = features.to_vec();
    out.push(Feature::Core);
    out.sort();
    out.dedup();
    out
}

/// Names of `features` joined with `, ` (e.g. `core, local-embeddings`).
pub fn display_list(features: &[Feature]) -> String {
    features
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether every feature in `required` is named in `have`.
pub fn covers(have: &[String], required: &[Feature]) -> bool {
    required
        .iter()
        .all(|f| have.iter().any(|h| h == f.as_str()))
}
