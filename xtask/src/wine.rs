//! A Wine prefix that runs ktx's Windows binaries on this Linux machine, prepared under
//! `<target>/wine/` on first use.
//!
//! Wine 8 (Debian bookworm) lacks `ProcessPrng` in `bcryptprimitives.dll`, which the Rust
//! standard library imports since 1.78 for its random numbers (HashMap seeds): every Rust exe
//! dies at load. A stub DLL exporting `ProcessPrng` (on top of `advapi32!SystemFunction036`,
//! Wine's RtlGenRandom), compiled with mingw-w64 and copied into the prefix's `system32`, makes
//! them start. The stub is rebuilt when its source changes; the prefix is created once
//! (`wineboot -i`, ~15 s) and reused; each use starts its own wineserver and services
//! (`wineboot`) and stops them at the end.
//!
//! Needs `wine` and `x86_64-w64-mingw32-gcc` (Debian: `apt-get install wine wine64
//! gcc-mingw-w64-x86-64`; `.ci/run` installs them).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The stub's C source: `ProcessPrng` fills the buffer from `SystemFunction036` in chunks
/// (its length argument is a ULONG).
const STUB_C: &str = r#"#include <windows.h>
typedef BOOLEAN (WINAPI *gen_random_fn)(PVOID, ULONG);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    static gen_random_fn gen_random;
    if (!gen_random) {
        HMODULE advapi = LoadLibraryA("advapi32.dll");
        if (!advapi) return FALSE;
        gen_random = (gen_random_fn)GetProcAddress(advapi, "SystemFunction036");
        if (!gen_random) return FALSE;
    }
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!gen_random(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
"#;

/// Its export list.
const STUB_DEF: &str = "LIBRARY bcryptprimitives.dll\nEXPORTS\nProcessPrng\n";

/// The mingw-w64 C compiler for x86_64 Windows (also the Rust target's linker).
pub const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// A prepared Wine prefix.
#[derive(Debug, Clone)]
pub struct Wine {
    prefix: PathBuf,
}

impl Wine {
    /// Prepares (or reuses) the prefix under `<target>/wine/prefix` with the stub DLL, and
    /// starts its wineserver (call [`Wine::stop_server`] when done).
    pub fn prepare(root: &Path) -> Result<Wine> {
        for (tool, package) in [("wine", "wine wine64"), (MINGW_GCC, "gcc-mingw-w64-x86-64")] {
            if ktx_runtime::python::which(tool).is_none() {
                bail!("`{tool}` is not on PATH: install it (Debian: `apt-get install {package}`)");
            }
        }
        let dir = crate::workspace::target_dir(root).join("wine");
        crate::fsx::create_dir_all(&dir)?;
        let dll = build_stub(&dir)?;
        let wine = Wine {
            prefix: dir.join("prefix"),
        };
        crate::fsx::create_dir_all(&wine.prefix)?;
        wine.start_server()?;
        // Written once `wineboot -i` succeeded (the registry files appear only when the
        // persistent wineserver exits, so they cannot tell).
        let ready = dir.join("prefix-ready");
        let create = !ready.is_file() || !wine.system32().is_dir();
        if create {
            println!(
                "==> wine: creating the prefix {} (once)",
                wine.prefix.display()
            );
        }
        // wineboot (`-i`: create the prefix) starts Wine's services under the new wineserver;
        // they hold whatever stdout they were given until `wineserver -k`, so its output goes
        // to a log file, and no later command starts them with its own pipes.
        let log_path = dir.join("wineboot.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut boot = wine.raw("wineboot");
        if create {
            boot.arg("-i");
        }
        boot.stdout(log.try_clone()?).stderr(log);
        let status = boot.status().context("cannot run wineboot")?;
        if !status.success() || !wine.system32().is_dir() {
            bail!(
                "`wineboot` failed ({status}) in {}; see {}",
                wine.prefix.display(),
                log_path.display()
            );
        }
        if create {
            std::fs::write(&ready, "wineboot -i succeeded\n")
                .with_context(|| format!("cannot write {}", ready.display()))?;
        }
        let installed = wine.system32().join("bcryptprimitives.dll");
        if std::fs::read(&installed).ok() != Some(crate::fsx::read(&dll)?) {
            std::fs::copy(&dll, &installed).with_context(|| {
                format!("cannot copy {} to {}", dll.display(), installed.display())
            })?;
        }
        Ok(wine)
    }

    fn system32(&self) -> PathBuf {
        self.prefix.join("drive_c/windows/system32")
    }

    /// The environment every Wine command gets: the prefix, no debug chatter, no desktop
    /// integration prompts.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .stdin(Stdio::null());
    }

    /// `program` (a Wine tool such as `wineboot`) in this prefix.
    fn raw(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        self.env(&mut cmd);
        cmd
    }

    /// `wine <exe>` in this prefix.
    pub fn command(&self, exe: &Path) -> Command {
        let mut cmd = self.raw("wine");
        cmd.arg(exe);
        cmd
    }

    /// Starts the prefix's wineserver persistently (detached, stdio null), so the first Wine
    /// command does not start one that inherits its output pipes and outlives it. Stop it with
    /// [`Wine::stop_server`].
    fn start_server(&self) -> Result<()> {
        let mut server = self.raw("wineserver");
        server.arg("-p").stdout(Stdio::null()).stderr(Stdio::null());
        let status = server.status().context("cannot run wineserver")?;
        if !status.success() {
            bail!("`wineserver -p` failed ({status})");
        }
        Ok(())
    }

    /// Stops the prefix's wineserver and every Wine process in it (`wineserver -k`).
    pub fn stop_server(&self) {
        let mut kill = self.raw("wineserver");
        kill.arg("-k").stdout(Stdio::null()).stderr(Stdio::null());
        let _ = kill.status();
    }
}

/// Compiles the stub into `<dir>/bcryptprimitives.dll` unless the one there was built from
/// the same source (its `.c` sits next to it).
fn build_stub(dir: &Path) -> Result<PathBuf> {
    let c = dir.join("bcryptprimitives.c");
    let def = dir.join("bcryptprimitives.def");
    let dll = dir.join("bcryptprimitives.dll");
    let same = std::fs::read_to_string(&c).ok().as_deref() == Some(STUB_C)
        && std::fs::read_to_string(&def).ok().as_deref() == Some(STUB_DEF);
    if same && dll.is_file() {
        return Ok(dll);
    }
    for (path, text) in [(&c, STUB_C), (&def, STUB_DEF)] {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut gcc = Command::new(MINGW_GCC);
    gcc.args(["-shared", "-O2", "-s", "-o"])
        .arg(&dll)
        .arg(&c)
        .arg(&def);
    let done = crate::proc::run(&mut gcc, Duration::from_secs(120))?;
    if !done.success() || !dll.is_file() {
        bail!(
            "{MINGW_GCC} could not build the ProcessPrng stub ({}):\n{}",
            done.status,
            done.stderr_tail()
        );
    }
    Ok(dll)
}
