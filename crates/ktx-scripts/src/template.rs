//! The file `ktx script new SLUG --kind K` writes: a frontmatter block with every field and an
//! entrypoint that returns plain JSON.

use crate::frontmatter::Kind;

/// Whether `slug` may name a new script: 1-64 of `[a-z0-9_-]`, starting with a letter or digit.
pub fn is_valid_slug(slug: &str) -> bool {
    let b = slug.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// The source of a new script.
pub fn new_script(slug: &str, kind: Kind, id: &str, now: &str) -> String {
    let entrypoint = kind.default_entrypoint();
    let title: String = slug
        .replace(['_', '-'], " ")
        .char_indices()
        .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c })
        .collect();
    let body = match kind {
        Kind::Macro => "    # A macro renders a value into a document: return a string (or any JSON value).\n    return str(context.get(\"value\", \"\"))\n",
        Kind::Transform => "    # A transform takes rows and returns rows (lists and objects of plain JSON).\n    rows = context.get(\"rows\", [])\n    return [dict(row) for row in rows]\n",
        Kind::Utility => "    # Return any plain JSON value: dict, list, str, int, float (finite), bool or None.\n    return {\"hello\": context.get(\"name\", \"world\")}\n",
    };
    format!(
        "\"\"\"\n---\nid: {id}\ntitle: {title}\nkind: {kind}\nentrypoint: {entrypoint}\nenabled: true\nversion: 1\nupdatedAt: '{now}'\ndescription: ''\n---\nWhat this script does, for the people who read it.\n\"\"\"\n\n\ndef {entrypoint}(context):\n    \"\"\"Called by ktx with `context`, a dict decoded from JSON.\"\"\"\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontmatter;

    #[test]
    fn templates_parse_without_warnings_for_every_kind() {
        for kind in Kind::ALL {
            let src = new_script("my_thing", kind, "s-1", "2026-01-01T00:00:00Z");
            let p = frontmatter::parse(&src, "my_thing");
            assert_eq!(p.warnings, vec![], "{src}");
            assert_eq!(p.meta.kind, kind);
            assert_eq!(p.meta.title, "My thing");
            assert!(src.contains(&format!("def {}(context):", kind.default_entrypoint())));
        }
        assert!(is_valid_slug("a-b_1"));
        assert!(
            !is_valid_slug("-a")
                && !is_valid_slug("A")
                && !is_valid_slug("a/b")
                && !is_valid_slug("")
        );
    }
}
