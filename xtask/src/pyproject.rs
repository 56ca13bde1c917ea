//! Reads the `[project]` table of `python-runtime/pyproject.toml`: the wheel's metadata source.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// The subset of PEP 621 metadata the wheel writer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Distribution name as written (`kaelio-ktx`).
    pub name: String,
    /// One-line summary (`description`).
    pub summary: Option<String>,
    /// `requires-python` specifier.
    pub requires_python: Option<String>,
    /// License expression or text.
    pub license: Option<String>,
    /// Core requirements (PEP 508 strings).
    pub dependencies: Vec<String>,
    /// Extras, sorted by normalized name: (extra, requirements).
    pub extras: Vec<(String, Vec<String>)>,
    /// Entry point groups, sorted: (group, sorted (name, target)). Includes `console_scripts`
    /// from `[project.scripts]` and `gui_scripts` from `[project.gui-scripts]`.
    pub entry_points: Vec<(String, Vec<(String, String)>)>,
    /// The readme's text and content type, if any.
    pub readme: Option<(String, String)>,
}

/// Parses `pyproject` (the file path is used in every error message).
pub fn load(pyproject: &Path) -> Result<Project> {
    let text = crate::fsx::read_to_string(pyproject)?;
    parse(&text, pyproject)
}

fn key_err(path: &Path, key: &str, what: &str) -> anyhow::Error {
    anyhow!("{}: key `{key}` {what}", path.display())
}

fn opt_str(table: &toml::Table, key: &str, path: &Path) -> Result<Option<String>> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(key_err(path, &format!("project.{key}"), "must be a string")),
    }
}

fn str_list(value: &toml::Value, key: &str, path: &Path) -> Result<Vec<String>> {
    let arr = value
        .as_array()
        .ok_or_else(|| key_err(path, key, "must be an array of strings"))?;
    arr.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| key_err(path, key, "must be an array of strings"))
        })
        .collect()
}

fn str_table(value: &toml::Value, key: &str, path: &Path) -> Result<Vec<(String, String)>> {
    let table = value
        .as_table()
        .ok_or_else(|| key_err(path, key, "must be a table of strings"))?;
    let mut out = table
        .iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| key_err(path, &format!("{key}.{k}"), "must be a string"))
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort();
    Ok(out)
}

/// Normalizes a name the PEP 503 / PEP 685 way: lower case, runs of `-_.` become `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Parses pyproject text; `path` names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Project> {
    let doc: toml::Table = toml::from_str(text)
        .with_context(|| format!("{} is not valid TOML; fix the syntax", path.display()))?;
    let project = match doc.get("project") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => bail!("{}: key `project` must be a table", path.display()),
        None => bail!(
            "{}: key `project` is missing (the [project] table)",
            path.display()
        ),
    };
    let name = match project.get("name") {
        Some(toml::Value::String(s)) if is_valid_name(s) => s.clone(),
        Some(toml::Value::String(s)) => {
            return Err(key_err(
                path,
                "project.name",
                &format!("`{s}` is not a valid name"),
            ))
        }
        Some(_) => return Err(key_err(path, "project.name", "must be a string")),
        None => return Err(key_err(path, "project.name", "is missing")),
    };
    if project.contains_key("version") {
        return Err(key_err(
            path,
            "project.version",
            "must not be set: the version comes from the workspace Cargo.toml \
             (remove it and keep `dynamic = [\"version\"]`)",
        ));
    }
    let dynamic = match project.get("dynamic") {
        Some(v) => str_list(v, "project.dynamic", path)?,
        None => Vec::new(),
    };
    if !dynamic.iter().any(|d| d == "version") {
        return Err(key_err(path, "project.dynamic", "must list \"version\""));
    }
    let dependencies = match project.get("dependencies") {
        Some(v) => str_list(v, "project.dependencies", path)?,
        None => Vec::new(),
    };
    let mut extras = Vec::new();
    if let Some(v) = project.get("optional-dependencies") {
        let table = v.as_table().ok_or_else(|| {
            key_err(
                path,
                "project.optional-dependencies",
                "must be a table of arrays",
            )
        })?;
        for (extra, reqs) in table {
            let key = format!("project.optional-dependencies.{extra}");
            extras.push((normalize(extra), str_list(reqs, &key, path)?));
        }
    }
    extras.sort();
    let mut entry_points = Vec::new();
    if let Some(v) = project.get("scripts") {
        entry_points.push((
            "console_scripts".to_string(),
            str_table(v, "project.scripts", path)?,
        ));
    }
    if let Some(v) = project.get("gui-scripts") {
        entry_points.push((
            "gui_scripts".to_string(),
            str_table(v, "project.gui-scripts", path)?,
        ));
    }
    if let Some(v) = project.get("entry-points") {
        let table = v
            .as_table()
            .ok_or_else(|| key_err(path, "project.entry-points", "must be a table of tables"))?;
        for (group, eps) in table {
            let key = format!("project.entry-points.{group}");
            entry_points.push((group.clone(), str_table(eps, &key, path)?));
        }
    }
    entry_points.sort();
    let license = match project.get("license") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(toml::Value::Table(t)) => match t.get("text") {
            Some(toml::Value::String(s)) => Some(s.clone()),
            _ => {
                return Err(key_err(
                    path,
                    "project.license",
                    "must be a license expression string or a table with `text`",
                ))
            }
        },
        Some(_) => {
            return Err(key_err(
                path,
                "project.license",
                "must be a string or a table",
            ))
        }
    };
    let readme = read_readme(project, path)?;
    Ok(Project {
        name,
        summary: opt_str(project, "description", path)?,
        requires_python: opt_str(project, "requires-python", path)?,
        license,
        dependencies,
        extras,
        entry_points,
        readme,
    })
}

fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn read_readme(project: &toml::Table, path: &Path) -> Result<Option<(String, String)>> {
    let base = path.parent().unwrap_or(Path::new("."));
    let (file, content_type): (PathBuf, Option<String>) = match project.get("readme") {
        None => return Ok(None),
        Some(toml::Value::String(f)) => (base.join(f), None),
        Some(toml::Value::Table(t)) => {
            let ct = match t.get("content-type") {
                None => None,
                Some(toml::Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    return Err(key_err(
                        path,
                        "project.readme.content-type",
                        "must be a string",
                    ))
                }
            };
            match (t.get("file"), t.get("text")) {
                (Some(toml::Value::String(f)), None) => (base.join(f), ct),
                (None, Some(toml::Value::String(text))) => {
                    let ct = ct.ok_or_else(|| {
                        key_err(
                            path,
                            "project.readme.content-type",
                            "is required with `text`",
                        )
                    })?;
                    return Ok(Some((text.clone(), ct)));
                }
                _ => {
                    return Err(key_err(
                        path,
                        "project.readme",
                        "must have exactly one of `file` or `text` (a string)",
                    ))
                }
            }
        }
        Some(_) => {
            return Err(key_err(
                path,
                "project.readme",
                "must be a string or a table",
            ))
        }
    };
    let content_type = match content_type {
        Some(ct) => ct,
        None => match file.extension().and_then(|e| e.to_str()) {
            Some("md") => "text/markdown".to_string(),
            Some("rst") => "text/x-rst".to_string(),
            Some("txt") => "text/plain".to_string(),
            _ => {
                return Err(key_err(
                    path,
                    "project.readme",
                    &format!(
                        "names {} whose content type cannot be guessed; use a .md, .rst or .txt \
                         file or a table with `content-type`",
                        file.display()
                    ),
                ))
            }
        },
    };
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "{}: key `project.readme` names {} which cannot be read",
            path.display(),
            file.display()
        )
    })?;
    Ok(Some((text, content_type)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_real_pyproject() {
        let p = load(&crate::project_root().join("python-runtime/pyproject.toml")).unwrap();
        assert_eq!(p.name, "kaelio-ktx");
        assert_eq!(p.requires_python.as_deref(), Some(">=3.10"));
        assert!(p.extras.iter().any(|(e, _)| e == "local-embeddings"));
        assert_eq!(
            p.entry_points,
            vec![(
                "console_scripts".to_string(),
                vec![(
                    "ktx-daemon".to_string(),
                    "ktx_daemon.__main__:main".to_string()
                )]
            )]
        );
        let (readme, ct) = p.readme.unwrap();
        assert_eq!(ct, "text/markdown");
        assert!(readme.contains("kaelio-ktx"));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let path = Path::new("/x/pyproject.toml");
        let cases = [
            ("[project]\nname = 3\ndynamic=[\"version\"]\n", "project.name"),
            ("[project]\ndynamic=[\"version\"]\n", "project.name"),
            ("[project]\nname='a'\ndynamic=[\"version\"]\ndependencies='x'\n", "project.dependencies"),
            ("[project]\nname='a'\nversion='1'\ndynamic=[\"version\"]\n", "project.version"),
            ("[project]\nname='a'\n", "project.dynamic"),
            (
                "[project]\nname='a'\ndynamic=[\"version\"]\n[project.optional-dependencies]\nx=[1]\n",
                "project.optional-dependencies.x",
            ),
            ("[project]\nname='a'\ndynamic=[\"version\"]\nscripts={a=1}\n", "project.scripts.a"),
            ("[project]\nname='a'\ndynamic=[\"version\"]\nreadme='nope.md'\n", "project.readme"),
            ("name = 'a'\n", "project"),
        ];
        for (text, key) in cases {
            let err = format!("{:#}", parse(text, path).unwrap_err());
            assert!(err.contains("/x/pyproject.toml"), "{err}");
            assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
        }
        let err = format!("{:#}", parse("[project\n", path).unwrap_err());
        assert!(err.contains("/x/pyproject.toml is not valid TOML"), "{err}");
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize("Local__Embeddings"), "local-embeddings");
        assert_eq!(normalize("a.b-c"), "a-b-c");
    }
}
