//! Tests of the static checks: refusals on binaries at hand (this test executable, which is a
//! dynamically linked host binary), and, over the cross-built release binaries (`cargo xtask
//! dist --targets all`), a pass plus one refusal per check on a patched copy. Those binaries
//! are required when `KTX_CROSS_BUILT=1` (set by `.ci/run` after it built them); otherwise
//! their tests say they were skipped.

use super::*;
use object::read::macho::MachHeader;

fn err(target: &str, data: &[u8]) -> String {
    format!("{:#}", check(target, data, Linkage::Static).unwrap_err())
}

#[test]
fn garbage_and_the_wrong_format_are_refused() {
    assert!(err("win32-x64", b"not a binary").contains("not an executable object file"));
    assert!(err("linux-x86", b"").contains("no static checks are known"));
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let host = crate::pack_npm::host_npm_target().unwrap();
    for other in ["darwin-arm64", "win32-x64", "linux-arm64"] {
        if other != host {
            let e = err(other, &me);
            assert!(e.contains("expected") && e.contains(other), "{other}: {e}");
        }
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn a_dynamically_linked_linux_binary_is_refused() {
    // This test executable is a glibc build: it has an interpreter.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let e = err("linux-x64", &me);
    assert!(
        e.contains("dynamically linked") && e.contains("musl"),
        "{e}"
    );
    // A developer's host build is checked for its machine only.
    let ok = check("linux-x64", &me, Linkage::HostBuild).unwrap();
    assert!(ok.summary.contains("host build"), "{}", ok.summary);
    assert!(check("linux-arm64", &me, Linkage::HostBuild).is_err());
}

/// The release binary `cargo xtask dist` cross-built for `target`, if present.
fn cross_built(target: &str) -> Option<Vec<u8>> {
    let triple = crate::dist::cross::triple_of(target).unwrap();
    let exe = if target.starts_with("win32-") {
        "ktx.exe"
    } else {
        "ktx"
    };
    let path = crate::workspace::target_dir(&crate::project_root())
        .join(triple)
        .join("release")
        .join(exe);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(_) if std::env::var("KTX_CROSS_BUILT").is_ok_and(|v| v == "1") => panic!(
            "KTX_CROSS_BUILT=1 but {} is missing: run `cargo xtask dist --targets all`",
            path.display()
        ),
        Err(_) => {
            eprintln!(
                "skipped: {} not built (run `cargo xtask dist --targets all`)",
                path.display()
            );
            None
        }
    }
}

#[test]
fn the_cross_built_binaries_pass_and_a_mismatched_target_fails() {
    for target in crate::dist::cross::ALL {
        let Some(bin) = cross_built(target) else {
            continue;
        };
        let ok = check(target, &bin, Linkage::Static).unwrap_or_else(|e| panic!("{target}: {e:#}"));
        eprintln!("{target}: {}", ok.summary);
        // The same bytes under each other target are refused.
        for other in crate::dist::cross::ALL.iter().filter(|o| **o != target) {
            assert!(
                check(other, &bin, Linkage::Static).is_err(),
                "{target} passed as {other}"
            );
        }
    }
}

/// File offset of the first load command `cmd` of a 64-bit Mach-O.
fn load_command_at(data: &[u8], cmd: macho::LoadCommandType) -> usize {
    let h = MachHeader64::<Endianness>::parse(data, 0).unwrap();
    let e = h.endian().unwrap();
    let mut it = h.load_commands(e, data, 0).unwrap();
    while let Some(c) = it.next().unwrap() {
        if c.cmd() == cmd {
            return c.offset() as usize;
        }
    }
    panic!("no load command {cmd}");
}

fn put_u32(data: &mut [u8], at: usize, v: u32) {
    data[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn darwin_checks_refuse_a_wrong_cpu_a_new_minos_a_foreign_dylib_and_a_bad_signature() {
    let Some(arm) = cross_built("darwin-arm64") else {
        return;
    };
    let summary = check("darwin-arm64", &arm, Linkage::Static)
        .unwrap()
        .summary;
    assert!(
        summary.contains("minimum macOS 11.0") && summary.contains("signature valid"),
        "{summary}"
    );

    // CPU type (offset 4 of the header).
    let mut b = arm.clone();
    put_u32(&mut b, 4, macho::CPU_TYPE_X86_64.0);
    assert!(err("darwin-arm64", &b).contains("CPU type"));

    // minos 15.0 in LC_BUILD_VERSION (cmd, cmdsize, platform, minos).
    let mut b = arm.clone();
    let at = load_command_at(&b, macho::LC_BUILD_VERSION);
    put_u32(&mut b, at + 12, 15 << 16);
    let e = err("darwin-arm64", &b);
    assert!(e.contains("minimum macOS is 15.0"), "{e}");

    // A dylib other than libSystem/libiconv: rename libSystem's entry in place.
    let mut b = arm.clone();
    let at = load_command_at(&b, macho::LC_LOAD_DYLIB);
    let name_off = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
    let name = b"/usr/lib/libobjc.A.dylib\0";
    b[at + name_off..at + name_off + name.len()].copy_from_slice(name);
    let e = err("darwin-arm64", &b);
    assert!(e.contains("libobjc.A.dylib") && e.contains("only"), "{e}");

    // A byte of code changed after signing.
    let mut b = arm.clone();
    let page = b.len() / 2 / 16384 * 16384 + 100;
    b[page] ^= 0xff;
    let e = err("darwin-arm64", &b);
    assert!(e.contains("does not match its signed hash"), "{e}");

    // No signature at all (the command's id replaced by an unknown one).
    let mut b = arm.clone();
    let at = load_command_at(&b, macho::LC_CODE_SIGNATURE);
    put_u32(&mut b, at, 0x7f);
    let e = err("darwin-arm64", &b);
    assert!(e.contains("no LC_CODE_SIGNATURE"), "{e}");
}

#[test]
fn the_x64_darwin_binary_targets_macos_10_12() {
    let Some(x64) = cross_built("darwin-x64") else {
        return;
    };
    let summary = check("darwin-x64", &x64, Linkage::Static).unwrap().summary;
    assert!(
        summary.contains("x86_64") && summary.contains("10.12"),
        "{summary}"
    );
}

#[test]
fn a_gui_subsystem_exe_is_refused() {
    let Some(exe) = cross_built("win32-x64") else {
        return;
    };
    let mut b = exe.clone();
    // e_lfanew at 0x3c; the optional header's Subsystem is at +4 (PE\0\0) +20 (file header) +68.
    let nt = u32::from_le_bytes(b[0x3c..0x40].try_into().unwrap()) as usize;
    let at = nt + 4 + 20 + 68;
    assert_eq!(
        u16::from_le_bytes([b[at], b[at + 1]]),
        3,
        "console subsystem"
    );
    b[at..at + 2].copy_from_slice(&2u16.to_le_bytes());
    let e = err("win32-x64", &b);
    assert!(e.contains("subsystem is 2"), "{e}");
}
