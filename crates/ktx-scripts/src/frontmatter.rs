//! The frontmatter of a script: a YAML block between two `---` lines at the start of the
//! module docstring, read into [`Meta`] with safe defaults, and edited line by line when ktx
//! writes a field back (the rest of the file, comments and formatting included, is kept).
//!
//! ```python
//! """
//! ---
//! id: s-3f2a...
//! title: Format a number
//! kind: macro
//! ---
//! Free text after the block is the docstring's own prose.
//! """
//! ```
//!
//! Reading never fails: a missing block, bad YAML, a wrong type or an unknown value gives a
//! [`Warning`] with its line and the field's default ([`Meta::defaults`]). Editing refuses
//! (returns `None`) only when the block exists but is not valid YAML: ktx never rewrites what
//! it could not read.

use std::time::Duration;

use serde_yaml::Value;

/// What a script is for; it picks the default entrypoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Renders a value into a document (`render(context)`).
    Macro,
    /// Transforms rows or values (`transform(context)`).
    Transform,
    /// Anything else (`main(context)`).
    Utility,
}

impl Kind {
    /// Every kind, in the order help and errors list them.
    pub const ALL: [Kind; 3] = [Kind::Macro, Kind::Transform, Kind::Utility];

    /// The name used in frontmatter, the index and `--kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Macro => "macro",
            Kind::Transform => "transform",
            Kind::Utility => "utility",
        }
    }

    /// The kind named `text`, if any.
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The entrypoint a script of this kind has when its frontmatter names none.
    pub fn default_entrypoint(self) -> &'static str {
        match self {
            Kind::Macro => "render",
            Kind::Transform => "transform",
            Kind::Utility => "main",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest per-script deadline a frontmatter `timeout` may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// A script's metadata after defaults were applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// The stable id as written in the file (`None`: missing or invalid; the index assigns one).
    pub id: Option<String>,
    /// The slug: always the file name's stem (a different `slug:` value is a warning).
    pub slug: String,
    /// Human title (default: the slug).
    pub title: String,
    /// Kind (default: utility).
    pub kind: Kind,
    /// The function ktx calls (default by kind).
    pub entrypoint: String,
    /// Whether `ktx script run` may call it (default true; an unreadable value means false).
    pub enabled: bool,
    /// The script's own version string (default "1").
    pub version: String,
    /// When ktx last changed the script (RFC 3339), if recorded.
    pub updated_at: Option<String>,
    /// Free text (default empty).
    pub description: String,
    /// Per-script call deadline (default: the caller's, 2 s).
    pub timeout: Option<Duration>,
}

impl Meta {
    /// The metadata of a script named `slug` with nothing declared.
    pub fn defaults(slug: &str) -> Meta {
        Meta {
            id: None,
            slug: slug.to_string(),
            title: slug.to_string(),
            kind: Kind::Utility,
            entrypoint: Kind::Utility.default_entrypoint().to_string(),
            enabled: true,
            version: "1".to_string(),
            updated_at: None,
            description: String::new(),
            timeout: None,
        }
    }
}

/// A problem found while reading the frontmatter: its 1-based line in the file and what was
/// done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line in the file.
    pub line: usize,
    /// What is wrong and which default is used instead.
    pub message: String,
}

/// Where the frontmatter block sits in the file (0-based line numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    /// The opening `---` line.
    open: usize,
    /// The closing `---` line.
    close: usize,
}

/// The parts of a file the editor needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// No module docstring: the first line that is not a comment or blank (or the end).
    NoDocstring { insert_at: usize },
    /// A docstring without a block: the line that opens it and the byte offset just after its
    /// opening quotes within that line.
    NoBlock { line: usize, after_quotes: usize },
    /// A block that parsed.
    Block(Block),
    /// A block whose YAML is invalid or that is not closed: never edited.
    Broken,
}

/// The result of [`parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Metadata with defaults applied.
    pub meta: Meta,
    /// Problems, in line order.
    pub warnings: Vec<Warning>,
    layout: Layout,
}

impl Parsed {
    /// Whether ktx may write fields back into this file ([`set_field`] would not refuse).
    pub fn editable(&self) -> bool {
        self.layout != Layout::Broken
    }
}

/// The known top-level keys.
const KEYS: [&str; 10] = [
    "id",
    "slug",
    "title",
    "kind",
    "entrypoint",
    "enabled",
    "version",
    "updatedAt",
    "description",
    "timeout",
];

/// Reads the frontmatter of `source`, a script whose file stem is `slug`.
pub fn parse(source: &str, slug: &str) -> Parsed {
    let lines: Vec<&str> = source.split('\n').collect();
    let mut warnings = Vec::new();
    let mut meta = Meta::defaults(slug);
    let layout = match locate(&lines) {
        Located::NoDocstring(at) => {
            warnings.push(Warning {
                line: at + 1,
                message: "no module docstring with a frontmatter block; using the defaults".into(),
            });
            Layout::NoDocstring { insert_at: at }
        }
        Located::NoBlock { line, after_quotes } => {
            warnings.push(Warning {
                line: line + 1,
                message:
                    "the module docstring has no frontmatter block (`---` lines); using the defaults"
                        .into(),
            });
            Layout::NoBlock { line, after_quotes }
        }
        Located::Unclosed(open) => {
            warnings.push(Warning {
                line: open + 1,
                message: "the frontmatter block has no closing `---` line; using the defaults"
                    .into(),
            });
            Layout::Broken
        }
        Located::Block(block) => {
            let yaml = lines[block.open + 1..block.close].join("\n");
            match serde_yaml::from_str::<Value>(&yaml) {
                Ok(Value::Mapping(map)) => {
                    read_fields(&map, &lines, block, &mut meta, &mut warnings);
                    Layout::Block(block)
                }
                Ok(Value::Null) => Layout::Block(block),
                Ok(_) => {
                    warnings.push(Warning {
                        line: block.open + 2,
                        message: "the frontmatter is not a mapping of `key: value` lines; using the defaults".into(),
                    });
                    Layout::Broken
                }
                Err(e) => {
                    let line = e
                        .location()
                        .map(|l| block.open + 1 + l.line())
                        .unwrap_or(block.open + 1);
                    let why = e.to_string();
                    let why = why.split(" at line ").next().unwrap_or(&why).to_string();
                    warnings.push(Warning {
                        line,
                        message: format!(
                            "invalid YAML in the frontmatter ({why}); using the defaults"
                        ),
                    });
                    Layout::Broken
                }
            }
        }
    };
    warnings.sort_by_key(|w| w.line);
    Parsed {
        meta,
        warnings,
        layout,
    }
}

enum Located {
    NoDocstring(usize),
    NoBlock { line: usize, after_quotes: usize },
    Unclosed(usize),
    Block(Block),
}

/// The opening quotes of a docstring at the start of `line`, and their length with any prefix.
fn docstring_quotes(line: &str) -> Option<(&'static str, usize)> {
    let prefix = line
        .bytes()
        .take_while(|b| matches!(b, b'r' | b'R' | b'u' | b'U'))
        .count();
    if prefix > 1 {
        return None;
    }
    let rest = &line[prefix..];
    ["\"\"\"", "'''"]
        .into_iter()
        .find(|q| rest.starts_with(q))
        .map(|q| (q, prefix + 3))
}

fn locate(lines: &[&str]) -> Located {
    let first = lines
        .iter()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .unwrap_or(lines.len());
    let Some((quote, after)) = lines.get(first).and_then(|l| docstring_quotes(l)) else {
        return Located::NoDocstring(first);
    };
    let rest = lines[first][after..].trim_end_matches('\r');
    // The block opens on the quotes' line (`"""---`) or on the next line.
    let open = if rest.trim() == "---" {
        first
    } else if rest.trim().is_empty() && lines.get(first + 1).map(|l| l.trim()) == Some("---") {
        first + 1
    } else {
        return Located::NoBlock {
            line: first,
            after_quotes: after,
        };
    };
    for (i, line) in lines.iter().enumerate().skip(open + 1) {
        if line.trim() == "---" {
            return Located::Block(Block { open, close: i });
        }
        if line.contains(quote) {
            break;
        }
    }
    Located::Unclosed(open)
}

/// The 0-based line of top-level key `key` inside `block`.
fn key_line(lines: &[&str], block: Block, key: &str) -> Option<usize> {
    (block.open + 1..block.close).find(|&i| {
        let l = lines[i];
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
            || l.strip_prefix(&format!("\"{key}\""))
                .or_else(|| l.strip_prefix(&format!("'{key}'")))
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

/// Whether `s` is a Python identifier (ASCII subset: what ktx templates and the ABI accept).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Whether `s` may be a script id: 1-64 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn read_fields(
    map: &serde_yaml::Mapping,
    lines: &[&str],
    block: Block,
    meta: &mut Meta,
    warnings: &mut Vec<Warning>,
) {
    let line_of = |key: &str| key_line(lines, block, key).unwrap_or(block.open) + 1;
    let mut warn = |key: &str, message: String| {
        warnings.push(Warning {
            line: line_of(key),
            message,
        })
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let mut entrypoint: Option<String> = None;
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            warn(
                "",
                format!("frontmatter key {} is not a string; ignored", describe(k)),
            );
            continue;
        };
        match key {
            "id" => match v {
                Value::String(s) if is_valid_id(s) => meta.id = Some(s.clone()),
                other => warn(
                    key,
                    format!(
                        "id: {} is not a valid id (1-64 letters, digits, '-' or '_'); a new id is assigned",
                        describe(other)
                    ),
                ),
            },
            "slug" => match text(v) {
                Some(s) if s == meta.slug => {}
                _ => warn(
                    key,
                    format!(
                        "slug: {} differs from the file name; using {:?} (the file name is the slug)",
                        describe(v),
                        meta.slug
                    ),
                ),
            },
            "title" => match text(v) {
                Some(s) if !s.trim().is_empty() => meta.title = s,
                _ => warn(
                    key,
                    format!("title: {} is not a text; using {:?}", describe(v), meta.title),
                ),
            },
            "kind" => match text(v).as_deref().and_then(Kind::parse) {
                Some(kind) => meta.kind = kind,
                None => warn(
                    key,
                    format!(
                        "kind: unknown value {} (expected macro, transform or utility); using utility",
                        describe(v)
                    ),
                ),
            },
            "entrypoint" => match text(v) {
                Some(s) if is_identifier(&s) => entrypoint = Some(s),
                _ => warn(
                    key,
                    format!(
                        "entrypoint: {} is not a Python function name; using the kind's default",
                        describe(v)
                    ),
                ),
            },
            "enabled" => match v {
                Value::Bool(b) => meta.enabled = *b,
                other => {
                    meta.enabled = false;
                    warn(
                        key,
                        format!(
                            "enabled: {} is not true or false; the script is treated as disabled",
                            describe(other)
                        ),
                    )
                }
            },
            "version" => match v {
                Value::Number(n) if n.is_u64() => meta.version = n.to_string(),
                Value::String(s) if !s.trim().is_empty() && s.len() <= 64 => {
                    meta.version = s.clone()
                }
                Value::Number(n) if n.is_f64() => meta.version = n.to_string(),
                other => warn(
                    key,
                    format!("version: {} is not a version; using \"1\"", describe(other)),
                ),
            },
            "updatedAt" => match text(v) {
                Some(s) if looks_like_rfc3339(&s) => meta.updated_at = Some(s),
                _ => warn(
                    key,
                    format!(
                        "updatedAt: {} is not an RFC 3339 UTC time (e.g. 2026-01-31T12:00:00Z); ignored",
                        describe(v)
                    ),
                ),
            },
            "description" => match text(v) {
                Some(s) => meta.description = s,
                None => warn(
                    key,
                    format!("description: {} is not a text; ignored", describe(v)),
                ),
            },
            "timeout" => match v.as_f64() {
                Some(secs) if secs > 0.0 && secs <= MAX_TIMEOUT.as_secs_f64() => {
                    meta.timeout = Some(Duration::from_secs_f64(secs))
                }
                _ => warn(
                    key,
                    format!(
                        "timeout: {} is not a number of seconds in (0, {}]; using the default",
                        describe(v),
                        MAX_TIMEOUT.as_secs()
                    ),
                ),
            },
            other => warn(
                other,
                format!(
                    "unknown frontmatter key {other:?} ignored (known: {})",
                    KEYS.join(", ")
                ),
            ),
        }
    }
    meta.entrypoint = entrypoint.unwrap_or_else(|| meta.kind.default_entrypoint().to_string());
}

/// `YYYY-MM-DDTHH:MM:SS` followed by a fraction and/or a zone: a shape check, not a calendar.
fn looks_like_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
}

/// `value` as one YAML scalar for a `key: value` line.
pub fn yaml_scalar(value: &Value) -> String {
    serde_yaml::to_string(value)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

/// `source` with the top-level field `key` set to `value` (replacing its line, or adding one;
/// creating the block, and the docstring, when there is none). `None` when the block exists
/// but could not be read: ktx does not rewrite what it could not parse.
pub fn set_field(source: &str, slug: &str, key: &str, value: &Value) -> Option<String> {
    let parsed = parse(source, slug);
    let line = format!("{key}: {}", yaml_scalar(value));
    let eol = if source.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut lines: Vec<String> = source
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    match parsed.layout {
        Layout::Broken => return None,
        Layout::Block(block) => {
            let borrowed: Vec<&str> = lines.iter().map(String::as_str).collect();
            match key_line(&borrowed, block, key) {
                Some(at) => {
                    // Drop the value's continuation lines (indented) along with it.
                    let mut end = at + 1;
                    while end < block.close
                        && (lines[end].starts_with(' ') || lines[end].starts_with('\t'))
                    {
                        end += 1;
                    }
                    lines.splice(at..end, [line]);
                }
                // The id goes first, everything else last.
                None if key == "id" => lines.insert(block.open + 1, line),
                None => lines.insert(block.close, line),
            }
        }
        Layout::NoBlock {
            line: at,
            after_quotes,
        } => {
            let rest = lines[at][after_quotes..].to_string();
            let head = lines[at][..after_quotes].to_string();
            let mut new = vec![head, "---".to_string(), line, "---".to_string()];
            if !rest.trim().is_empty() {
                new.push(rest);
            }
            lines.splice(at..=at, new);
        }
        Layout::NoDocstring { insert_at } => {
            let block = [
                "\"\"\"".to_string(),
                "---".to_string(),
                line,
                "---".to_string(),
                "\"\"\"".to_string(),
            ];
            lines.splice(insert_at..insert_at, block);
        }
    }
    Some(lines.join(eol))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "#!/usr/bin/env python3\n\"\"\"\n---\nid: abc-1\ntitle: Hello\nkind: macro\nenabled: false\nversion: 3\nupdatedAt: '2026-01-31T12:00:00Z'\ndescription: Says hello\ntimeout: 1.5\n---\nProse.\n\"\"\"\n\ndef render(ctx):\n    return 1\n";

    #[test]
    fn a_complete_block_is_read_without_warnings() {
        let p = parse(GOOD, "hello");
        assert_eq!(p.warnings, vec![]);
        let m = p.meta;
        assert_eq!(m.id.as_deref(), Some("abc-1"));
        assert_eq!(m.title, "Hello");
        assert_eq!(m.kind, Kind::Macro);
        assert_eq!(m.entrypoint, "render");
        assert!(!m.enabled);
        assert_eq!(m.version, "3");
        assert_eq!(m.updated_at.as_deref(), Some("2026-01-31T12:00:00Z"));
        assert_eq!(m.description, "Says hello");
        assert_eq!(m.timeout, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_values_warn_at_their_line_and_fall_back() {
        let src = "\"\"\"\n---\nkind: gadget\nentrypoint: 9lives\nenabled: maybe\nslug: other\ncolour: red\ntimeout: -1\n---\n\"\"\"\n";
        let p = parse(src, "x");
        let lines: Vec<usize> = p.warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7, 8], "{:?}", p.warnings);
        assert!(p.warnings[0].message.contains("using utility"));
        assert_eq!(p.meta.kind, Kind::Utility);
        assert_eq!(p.meta.entrypoint, "main");
        assert!(!p.meta.enabled, "an unreadable enabled is the safe false");
        assert_eq!(p.meta.slug, "x");
        assert_eq!(p.meta.timeout, None);
        assert!(p.editable());
    }

    #[test]
    fn invalid_yaml_warns_with_the_file_line_and_is_never_rewritten() {
        let src = "\"\"\"\n---\ntitle: ok\nkind: [macro\n---\n\"\"\"\n";
        let p = parse(src, "x");
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].line >= 4, "{:?}", p.warnings);
        assert!(p.warnings[0].message.starts_with("invalid YAML"));
        assert_eq!(p.meta, Meta::defaults("x"));
        assert!(!p.editable());
        assert_eq!(set_field(src, "x", "id", &Value::from("a")), None);

        let unclosed = "\"\"\"\n---\ntitle: ok\n\"\"\"\n";
        assert!(parse(unclosed, "x").warnings[0]
            .message
            .contains("no closing"));
    }

    #[test]
    fn set_field_replaces_adds_or_creates_the_block() {
        let out = set_field(GOOD, "hello", "enabled", &Value::Bool(true)).unwrap();
        assert!(out.contains("\nenabled: true\n"));
        assert_eq!(out.len(), GOOD.len() - 1);
        assert!(parse(&out, "hello").meta.enabled);

        let no_id = GOOD.replace("id: abc-1\n", "");
        let out = set_field(&no_id, "hello", "id", &Value::from("new-1")).unwrap();
        assert!(out.contains("---\nid: new-1\ntitle: Hello"), "{out}");

        let plain = "\"\"\"Does things.\"\"\"\nx = 1\n";
        let out = set_field(plain, "p", "id", &Value::from("p-1")).unwrap();
        let p = parse(&out, "p");
        assert_eq!(p.meta.id.as_deref(), Some("p-1"), "{out}");
        assert!(out.contains("Does things.\"\"\""), "{out}");

        let bare = "# a comment\nimport os\n";
        let out = set_field(bare, "b", "id", &Value::from("b-1")).unwrap();
        assert!(
            out.starts_with("# a comment\n\"\"\"\n---\nid: b-1\n---\n\"\"\"\nimport os"),
            "{out}"
        );
        assert_eq!(parse(&out, "b").warnings, vec![]);
    }
}
