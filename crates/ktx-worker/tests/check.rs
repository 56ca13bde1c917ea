//! `check`: syntax errors with line and column, entrypoint discovery, and no top-level code run.

mod common;

use common::{worker, Scripts};
use ktx_worker::CheckError;

#[test]
fn a_good_script_checks_without_running_its_top_level() {
    let s = Scripts::new();
    let marker = s.dir.path().join("ran");
    let source = format!(
        "open({:?}, 'w').write('ran')\nwhile True:\n    pass\ndef render(context):\n    return 1\n",
        marker.display().to_string()
    );
    let script = s.add("good", &source, "render");
    let mut w = worker();
    let out = w.check(&script);
    assert!(out.ok && out.entrypoint_found, "{out:?}");
    assert!(out.errors.is_empty());
    assert!(
        !marker.exists(),
        "the check ran the script's top-level code"
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let s = Scripts::new();
    let mut w = worker();
    let bad = s.add(
        "bad",
        "x = 1\ndef render(context):\n    return (1 +\n",
        "render",
    );
    let out = w.check(&bad);
    assert!(!out.ok && !out.entrypoint_found);
    assert_eq!(out.errors.len(), 1);
    let CheckError { message, line, col } = &out.errors[0];
    assert_eq!(message, "SyntaxError: '(' was never closed");
    assert_eq!((*line, *col), (Some(3), Some(12)));

    // Found by the compiler after parsing, still without running anything.
    let late = s.add(
        "late",
        "return 5\ndef render(context):\n    pass\n",
        "render",
    );
    let out = w.check(&late);
    assert_eq!(
        out.errors[0].message,
        "SyntaxError: 'return' outside function"
    );
    assert_eq!(out.errors[0].line, Some(1));
}

#[test]
fn entrypoint_discovery_finds_defs_assignments_and_imports() {
    let s = Scripts::new();
    let mut w = worker();
    let cases = [
        ("def render(context):\n    pass\n", "render", true, 0),
        ("def render(*args):\n    pass\n", "render", true, 0),
        ("from json import dumps as render\n", "render", true, 0),
        (
            "def _impl(c):\n    pass\nrender = _impl\n",
            "render",
            true,
            0,
        ),
        ("def main(context):\n    pass\n", "render", false, 1),
        ("def render():\n    pass\n", "render", true, 1),
        ("async def render(context):\n    pass\n", "render", true, 1),
        (
            "if True:\n    def render(c):\n        pass\n",
            "render",
            false,
            1,
        ),
    ];
    for (i, (source, entry, found, errors)) in cases.into_iter().enumerate() {
        let script = s.add(&format!("s{i}"), source, entry);
        let out = w.check(&script);
        assert_eq!(out.entrypoint_found, found, "{source}: {out:?}");
        assert_eq!(out.errors.len(), errors, "{source}: {out:?}");
        assert_eq!(out.ok, errors == 0);
    }
    let missing = s.add("m", "def main(context):\n    pass\n", "render");
    assert_eq!(
        w.check(&missing).errors[0].message,
        "no top-level `render` is defined"
    );
    let noarg = s.add("n", "x = 1\ndef render():\n    pass\n", "render");
    let e = &w.check(&noarg).errors[0];
    assert_eq!(
        e.message,
        "`render` takes no argument: it is called as render(context)"
    );
    assert_eq!((e.line, e.col), (Some(2), Some(1)));
}

#[test]
fn an_unreadable_file_is_a_check_error() {
    let s = Scripts::new();
    let mut script = s.add("x", "def render(c):\n    pass\n", "render");
    script.path = s.dir.path().join("absent.py");
    let out = worker().check(&script);
    assert!(!out.ok);
    assert!(out.errors[0].message.starts_with("cannot read"), "{out:?}");
}
