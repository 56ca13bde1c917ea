//! The project's `.ktx/` directory (derived state: the script index, the trash of removed
//! scripts). When ktx creates it, it adds `.ktx/` to the project's `.gitignore` so the index is
//! never committed.

use std::io;
use std::path::{Path, PathBuf};

/// The directory's name under the project root.
pub const DOT_KTX: &str = ".ktx";

/// The `.gitignore` line ktx adds.
pub const IGNORE_LINE: &str = ".ktx/";

/// `<root>/.ktx`, created (with the `.gitignore` line) when absent.
pub fn ensure(root: &Path) -> io::Result<PathBuf> {
    let dir = root.join(DOT_KTX);
    if dir.is_dir() {
        return Ok(dir);
    }
    match std::fs::create_dir(&dir) {
        Ok(()) => add_ignore_line(root)?,
        // Another ktx created it a moment ago (and adds the line).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Ok(dir)
}

/// Appends [`IGNORE_LINE`] to `<root>/.gitignore` unless a line already ignores `.ktx`.
fn add_ignore_line(root: &Path) -> io::Result<()> {
    let path = root.join(".gitignore");
    let current = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let ignored = current
        .lines()
        .any(|l| matches!(l.trim(), ".ktx" | ".ktx/" | "/.ktx" | "/.ktx/"));
    if ignored {
        return Ok(());
    }
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(IGNORE_LINE);
    text.push('\n');
    crate::files::write(&path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ignore_line_is_added_once_when_the_directory_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".gitignore"), "target").unwrap();
        ensure(tmp.path()).unwrap();
        ensure(tmp.path()).unwrap();
        let text = std::fs::read_to_string(tmp.path().join(".gitignore")).unwrap();
        assert_eq!(text, "target\n.ktx/\n");

        let tmp = tempfile::tempdir().unwrap();
        ensure(tmp.path()).unwrap();
        let text = std::fs::read_to_string(tmp.path().join(".gitignore")).unwrap();
        assert_eq!(text, ".ktx/\n");
    }
}
