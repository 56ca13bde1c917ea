//! Runtime features: `core` (always installed), `local-embeddings`, one per warehouse driver
//! (`postgres`, `duckdb`, `mysql`) and `sandbox` (wasmtime, the host of `ktx python`). Every
//! feature but `core` is an extra of the wheel.

use std::fmt;

/// A feature of the Python runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    /// The semantic layer (sqlglot, pyyaml). Always installed.
    Core,
    /// Local sentence embeddings (the wheel's `local-embeddings` extra).
    LocalEmbeddings,
    /// The PostgreSQL driver (the `postgres` extra: psycopg 3 with its binary libpq).
    Postgres,
    /// The DuckDB driver (the `duckdb` extra).
    Duckdb,
    /// The MySQL / MariaDB driver (the `mysql` extra: PyMySQL, pure Python).
    Mysql,
    /// The WebAssembly sandbox of `ktx python` (the `sandbox` extra: wasmtime).
    Sandbox,
}

impl Feature {
    /// Every feature, in canonical order.
    pub const ALL: [Feature; 6] = [
        Feature::Core,
        Feature::LocalEmbeddings,
        Feature::Postgres,
        Feature::Duckdb,
        Feature::Mysql,
        Feature::Sandbox,
    ];

    /// The warehouse driver features, in canonical order.
    pub const DRIVERS: [Feature; 3] = [Feature::Postgres, Feature::Duckdb, Feature::Mysql];

    /// The stable name: `core`, `local-embeddings`, `postgres`, `duckdb`, `mysql` or `sandbox`.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Core => "core",
            Feature::LocalEmbeddings => "local-embeddings",
            Feature::Postgres => "postgres",
            Feature::Duckdb => "duckdb",
            Feature::Mysql => "mysql",
            Feature::Sandbox => "sandbox",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The wheel extra that provides this feature, if any (the extra has the feature's name).
    pub fn extra(self) -> Option<&'static str> {
        match self {
            Feature::Core => None,
            other => Some(other.as_str()),
        }
    }

    /// Whether this is a warehouse driver feature.
    pub fn is_driver(self) -> bool {
        Feature::DRIVERS.contains(&self)
    }

    /// What a driver feature installs, for doctor's checks and for messages; `None` for the
    /// other features.
    pub fn driver_package(self) -> Option<DriverPackage> {
        let (engine, parts): (&str, &[(&str, &str)]) = match self {
            Feature::Postgres => (
                "PostgreSQL",
                &[
                    ("psycopg", "psycopg/__init__.py"),
                    ("psycopg-binary", "psycopg_binary/__init__.py"),
                ],
            ),
            Feature::Duckdb => ("DuckDB", &[("duckdb", "duckdb/__init__.py")]),
            Feature::Mysql => ("MySQL / MariaDB", &[("PyMySQL", "pymysql/__init__.py")]),
            Feature::Core | Feature::LocalEmbeddings | Feature::Sandbox => return None,
        };
        Some(DriverPackage { engine, parts })
    }
}

/// What a driver feature puts in the venv (see [`Feature::driver_package`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverPackage {
    /// The engine, for people (e.g. `PostgreSQL`).
    pub engine: &'static str,
    /// `(distribution, file under site-packages that exists once it is installed)`, the
    /// driver's own distribution first.
    pub parts: &'static [(&'static str, &'static str)],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_drivers_have_extras_of_their_name() {
        for f in Feature::ALL {
            assert_eq!(Feature::parse(f.as_str()), Some(f));
        }
        for f in Feature::DRIVERS {
            assert!(f.is_driver());
            assert_eq!(f.extra(), Some(f.as_str()));
            assert!(f.driver_package().is_some(), "{f}");
        }
        assert_eq!(Feature::Core.extra(), None);
        assert!(!Feature::LocalEmbeddings.is_driver());
        assert!(!Feature::Sandbox.is_driver());
        assert_eq!(Feature::Sandbox.extra(), Some("sandbox"));
        assert_eq!(
            normalize(&[Feature::Mysql, Feature::Duckdb, Feature::Postgres]),
            Feature::ALL
                .iter()
                .copied()
                .filter(|f| *f != Feature::LocalEmbeddings && *f != Feature::Sandbox)
                .collect::<Vec<_>>()
        );
    }
}
