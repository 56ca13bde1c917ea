//! `artifacts-verify --target linux-arm64` on a linux-x64 host: the whole smoke, through the
//! installed npm package, with the packed `native/linux-arm64/ktx` running under qemu-user.
//!
//! What makes it work (each set up here, idempotently; the system parts need root):
//! - binfmt_misc: `/proc/sys/fs/binfmt_misc` mounted and `qemu-aarch64` registered from
//!   Debian's `/usr/lib/binfmt.d/qemu-aarch64.conf` (package `qemu-user-static`), so the
//!   kernel runs every aarch64 ELF (ktx, Python, uv) through qemu, children included.
//! - An arm64 CPython: Debian's `python3.11:arm64` and its dependencies (plus the
//!   architecture-independent pip it needs to bootstrap uv), fetched with `apt-get download`
//!   after `dpkg --add-architecture arm64` and unpacked with `dpkg -x` into
//!   `<target>/qemu/arm64-sysroot` (reused once its stamp is written; delete it to refresh).
//!   `QEMU_LD_PREFIX` points qemu at it. Its empty `etc/ssl/certs` is deleted, so lookups fall
//!   through to the host's CA certificates (otherwise TLS fails with UnknownIssuer).
//! - Node stays the host's (x64): npm installs the package as usual, and a `--require` preload
//!   in `NODE_OPTIONS` makes `process.arch` read `arm64`, exactly what node reports on an arm64
//!   machine, so the unmodified launcher picks `native/linux-arm64/ktx` for every step (`npm
//!   exec`, `.bin/ktx`, the global bin). The launcher has no override of its own, and none is
//!   added for this.
//! - `python3` on the sandbox's PATH is the sysroot's python3.11 (ktx finds it first), so the
//!   runtime installs an arm64 venv and bootstraps uv from the `linux-aarch64` pin.
//!
//! Extra steps prove the emulation is real: the launcher's child runs under qemu (qemu's
//! `QEMU_STRACE` log appears), and the runtime's interpreter, venv and uv are aarch64.
//! [`workspace_tests`] runs the ktx-base and ktx-runtime unit tests for the target under qemu.

use super::exec::RunExt;
use super::{Ctx, QUICK};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The Rust target of the arm64 binary.
pub const TRIPLE: &str = "aarch64-unknown-linux-musl";
const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
const BINFMT_CONF: &str = "/usr/lib/binfmt.d/qemu-aarch64.conf";
/// The emulator (Debian's qemu-user-static), also the cargo test runner.
pub const QEMU: &str = "qemu-aarch64-static";
/// The interpreter the sysroot provides (Debian bookworm's).
const PYTHON: &str = "python3.11";
/// Architecture-independent packages the arm64 Python needs besides its own closure: pip
/// (ktx bootstraps uv with `python -m pip download`) and what Debian's pip imports.
const ALL_ARCH: [&str; 6] = [
    "python3-pip",
    "python3-setuptools",
    "python3-wheel",
    "python3-pkg-resources",
    "python3-distutils",
    "python3-lib2to3",
];
/// arm64 packages in python3.11's dependency closure that running Python does not need (the
/// package manager and what it pulls in).
const SKIP: [&str; 6] = [
    "dpkg",
    "install-info",
    "tar",
    "perl",
    "perl-base",
    "debconf",
];

/// The arm64 world one smoke uses.
#[derive(Debug, Clone)]
pub struct Arm64 {
    /// The unpacked Debian arm64 root (`QEMU_LD_PREFIX`).
    pub sysroot: PathBuf,
    /// A directory put first on PATH: `python3` and `python3.11` linked to the sysroot's.
    pub shims: PathBuf,
    /// The node preload that reports `process.arch` as `arm64`.
    pub preload: PathBuf,
}

impl Arm64 {
    /// Prepares the host (binfmt, the sysroot under `target_dir`) and the sandbox's shims and
    /// preload under `sandbox`.
    pub fn prepare(target_dir: &Path, sandbox: &Path) -> Result<Arm64> {
        ensure_binfmt()?;
        let sysroot = ensure_sysroot(&target_dir.join("qemu"))?;
        let shims = sandbox.join("arm64-python");
        crate::fsx::create_dir_all(&shims)?;
        let python = sysroot.join("usr/bin").join(PYTHON);
        for name in ["python3", PYTHON] {
            symlink(&python, &shims.join(name))?;
        }
        let preload = sandbox.join("as-arm64.js");
        std::fs::write(
            &preload,
            "// artifacts-verify --target linux-arm64: node reports what it would on an arm64 \
             machine.\nObject.defineProperty(process, 'arch', { value: 'arm64' });\n",
        )
        .with_context(|| format!("cannot write {}", preload.display()))?;
        Ok(Arm64 {
            sysroot,
            shims,
            preload,
        })
    }

    /// The environment every sandboxed command gets on top of the native smoke's: `path` is
    /// that smoke's PATH.
    pub fn apply(&self, cmd: &mut Command, path: &std::ffi::OsStr) -> Result<()> {
        let mut dirs = vec![self.shims.clone()];
        dirs.extend(std::env::split_paths(path));
        cmd.env(
            "PATH",
            std::env::join_paths(dirs).context("cannot build the arm64 PATH")?,
        )
        .env("QEMU_LD_PREFIX", &self.sysroot)
        .env(
            "NODE_OPTIONS",
            format!("--require={}", self.preload.display()),
        )
        // Python under emulation starts ~10x slower: give the daemon time to come up.
        .env("KTX_DAEMON_START_TIMEOUT", "180");
        Ok(())
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} -> {}", link.display(), target.display()))
}

// `target::parse` offers qemu only on a linux-x64 host.
#[cfg(not(unix))]
fn symlink(_: &Path, _: &Path) -> Result<()> {
    bail!("the qemu-user smoke runs on a Linux host only")
}

fn root_hint() -> &'static str {
    "run as root (it mounts binfmt_misc, registers qemu-aarch64, adds the arm64 architecture \
     to dpkg), or do it once by hand: `apt-get install qemu-user-static`, `mount -t binfmt_misc \
     binfmt_misc /proc/sys/fs/binfmt_misc`, `cat /usr/lib/binfmt.d/qemu-aarch64.conf > \
     /proc/sys/fs/binfmt_misc/register`, `dpkg --add-architecture arm64 && apt-get update`"
}

/// binfmt_misc mounted and `qemu-aarch64` registered and enabled.
pub fn ensure_binfmt() -> Result<()> {
    let entry = Path::new(BINFMT_DIR).join("qemu-aarch64");
    if !entry.exists() {
        ensure!(
            Path::new(BINFMT_CONF).is_file(),
            "{BINFMT_CONF} is missing: `apt-get install qemu-user-static`"
        );
        let register = Path::new(BINFMT_DIR).join("register");
        if !register.exists() {
            println!("qemu: mount -t binfmt_misc binfmt_misc {BINFMT_DIR}");
            let mut mount = Command::new("mount");
            mount.args(["-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR]);
            crate::proc::run_ok(&mut mount, QUICK)
                .with_context(|| format!("cannot mount binfmt_misc; {}", root_hint()))?;
        }
        println!("qemu: registering {BINFMT_CONF}");
        let conf = crate::fsx::read(Path::new(BINFMT_CONF))?;
        std::fs::write(&register, conf).with_context(|| {
            format!(
                "cannot register qemu-aarch64 in {}; {}",
                register.display(),
                root_hint()
            )
        })?;
    }
    let state = crate::fsx::read_to_string(&entry)?;
    ensure!(
        state.lines().next() == Some("enabled"),
        "{} is not enabled: `echo 1 > {}`",
        entry.display(),
        entry.display()
    );
    Ok(())
}

/// Runs a command that must succeed within `timeout`; returns its stdout.
fn stdout_of(cmd: &mut Command, timeout: Duration) -> Result<String> {
    Ok(crate::proc::run_ok(cmd, timeout)?.stdout)
}

/// The arm64 packages to unpack: python3.11's dependency closure (arm64 only, without
/// [`SKIP`]) and [`ALL_ARCH`].
fn packages() -> Result<Vec<String>> {
    let foreign = stdout_of(
        Command::new("dpkg").arg("--print-foreign-architectures"),
        QUICK,
    )
    .context("cannot run dpkg (the arm64 sysroot comes from Debian packages)")?;
    let known = |cmd: &mut Command| {
        crate::proc::run(cmd, QUICK).is_ok_and(|f| f.success() && !f.stdout.is_empty())
    };
    let show = || {
        let mut c = Command::new("apt-cache");
        c.args(["show", "--no-all-versions", "python3.11:arm64"]);
        c
    };
    if !foreign.lines().any(|l| l.trim() == "arm64") || !known(&mut show()) {
        println!("qemu: dpkg --add-architecture arm64 && apt-get update");
        crate::proc::run_ok(
            Command::new("dpkg").args(["--add-architecture", "arm64"]),
            QUICK,
        )
        .with_context(root_hint)?;
        crate::proc::run_ok(
            Command::new("apt-get").args(["-o", "DPkg::Lock::Timeout=600", "update", "-qq"]),
            Duration::from_secs(900),
        )
        .with_context(root_hint)?;
    }
    let tree = stdout_of(
        Command::new("apt-cache").args([
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            &format!("{PYTHON}:arm64"),
        ]),
        QUICK,
    )?;
    let mut out: Vec<String> = tree
        .lines()
        .filter(|l| !l.starts_with([' ', '<']))
        .filter_map(|l| l.trim().strip_suffix(":arm64"))
        .filter(|name| !SKIP.contains(name))
        .map(|name| format!("{name}:arm64"))
        .chain(ALL_ARCH.iter().map(|s| s.to_string()))
        .collect();
    out.sort();
    out.dedup();
    ensure!(
        out.iter().any(|p| p == &format!("{PYTHON}:arm64")),
        "apt-cache lists no {PYTHON}:arm64 in its own dependency tree:\n{tree}"
    );
    Ok(out)
}

/// `<dir>/arm64-sysroot`, built once: download, unpack into a staging directory, check the
/// interpreter runs as aarch64, rename into place, stamp.
fn ensure_sysroot(dir: &Path) -> Result<PathBuf> {
    let sysroot = dir.join("arm64-sysroot");
    let stamp = sysroot.join(".ktx-sysroot");
    if stamp.is_file() {
        return Ok(sysroot);
    }
    which(QEMU)
        .with_context(|| format!("no {QEMU} on PATH: `apt-get install qemu-user-static`"))?;
    let started = Instant::now();
    let pkgs = packages()?;
    let debs = dir.join("debs");
    crate::fsx::create_dir_all(&debs)?;
    println!(
        "qemu: apt-get download {} packages for the arm64 sysroot (~20 MB, once)",
        pkgs.len()
    );
    let mut dl = Command::new("apt-get");
    dl.arg("download").args(&pkgs).current_dir(&debs);
    crate::proc::run_ok(&mut dl, Duration::from_secs(900)).context(
        "apt-get download of the arm64 packages failed; check access to the Debian mirror",
    )?;
    let staging = dir.join(format!("arm64-sysroot.tmp-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    crate::fsx::create_dir_all(&staging)?;
    let mut names = Vec::new();
    for e in std::fs::read_dir(&debs).with_context(|| format!("cannot list {}", debs.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            names.push(p);
        }
    }
    names.sort();
    for deb in &names {
        let mut x = Command::new("dpkg");
        x.arg("-x").arg(deb).arg(&staging);
        crate::proc::run_ok(&mut x, QUICK)?;
    }
    // An empty certificate directory would shadow the host's (qemu looks in the prefix first).
    let certs = staging.join("etc/ssl/certs");
    if certs.exists() {
        std::fs::remove_dir_all(&certs)
            .with_context(|| format!("cannot remove {}", certs.display()))?;
    }
    let machine = python_machine(&staging, &staging.join("usr/bin").join(PYTHON))?;
    ensure!(
        machine == "aarch64",
        "the sysroot's {PYTHON} reports machine {machine:?}, expected aarch64"
    );
    if sysroot.exists() {
        std::fs::remove_dir_all(&sysroot)
            .with_context(|| format!("cannot remove {}", sysroot.display()))?;
    }
    std::fs::rename(&staging, &sysroot)
        .with_context(|| format!("cannot move {} into place", staging.display()))?;
    let list: String = names
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| format!("{}\n", n.to_string_lossy()))
        .collect();
    crate::fsx::write_all_atomic(&[(stamp, list.into_bytes())])?;
    println!(
        "qemu: arm64 sysroot ready at {} ({} debs, {:.0?})",
        sysroot.display(),
        names.len(),
        started.elapsed()
    );
    Ok(sysroot)
}

/// `platform.machine()` of `python` (run through binfmt with `QEMU_LD_PREFIX=sysroot`), after
/// importing what the runtime needs from the standard library and pip.
fn python_machine(sysroot: &Path, python: &Path) -> Result<String> {
    let mut c = Command::new(python);
    c.args([
        "-c",
        "import platform, sqlite3, ssl, venv, pip; print(platform.machine())",
    ])
    .env("QEMU_LD_PREFIX", sysroot);
    let out = stdout_of(&mut c, Duration::from_secs(120))
        .with_context(|| format!("the arm64 {PYTHON} does not run under qemu"))?;
    Ok(out.trim().to_string())
}

fn which(program: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{program} not found on PATH"))
}

fn arm64(ctx: &Ctx) -> Result<&Arm64> {
    ctx.arm64
        .as_ref()
        .context("the arm64 steps run only with --target linux-arm64")
}

/// Step 1d: the launcher runs the packed linux-arm64 binary, under qemu: with `QEMU_STRACE`
/// set, qemu logs the emulated program's syscalls (a native binary would log none), and the
/// version is still right.
pub fn launcher_runs_arm64(ctx: &mut Ctx) -> Result<()> {
    arm64(ctx)?;
    let mut cmd = ctx.npm(&["exec", "--no", "--", "ktx", "--version"]);
    cmd.env("QEMU_STRACE", "1");
    let ran = cmd.succeeds(QUICK)?;
    ran.require(
        ran.stdout()
            .lines()
            .any(|l| l == ctx.version_line().unwrap_or_default()),
        "expected the version line on stdout",
    )?;
    let emulated = ran
        .stderr()
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next().is_some_and(|pid| pid.parse::<u32>().is_ok())
                && w.next().is_some_and(|call| call.contains('('))
        })
        .count();
    ran.require(
        emulated > 0,
        "no qemu syscall log on stderr: the launcher did not run native/linux-arm64/ktx under qemu",
    )
}

/// Step 4c: the runtime's interpreter is the sysroot's arm64 Python, its venv runs as
/// aarch64, and the uv ktx bootstrapped is the aarch64 build.
pub fn runtime_is_arm64(ctx: &mut Ctx) -> Result<()> {
    let a = arm64(ctx)?.clone();
    let (ran, st) = ctx.status_of_kind("ready")?;
    let interp = PathBuf::from(
        st.pointer("/manifest/interpreter/path")
            .and_then(|v| v.as_str())
            .unwrap_or_default(),
    );
    let real = std::fs::canonicalize(&interp).unwrap_or(interp.clone());
    ran.require(
        real.starts_with(&a.sysroot),
        format!(
            "the runtime's interpreter {} is not the arm64 sysroot's ({})",
            interp.display(),
            a.sysroot.display()
        ),
    )?;
    let venv_python = PathBuf::from(
        st.pointer("/manifest/pythonPath")
            .and_then(|v| v.as_str())
            .unwrap_or_default(),
    );
    let machine = python_machine_in(ctx, &venv_python)?;
    ran.require(
        machine == "aarch64",
        format!(
            "the venv's python {} reports {machine:?}",
            venv_python.display()
        ),
    )?;
    let tools = ctx.runtime_root().join("tools/uv");
    let uv = std::fs::read_dir(&tools)
        .with_context(|| format!("ktx bootstrapped no uv under {}", tools.display()))?
        .flatten()
        .map(|e| e.path().join("uv"))
        .find(|p| p.is_file())
        .with_context(|| format!("no uv binary under {}", tools.display()))?;
    let checked = crate::binary_check::check_file(
        "linux-arm64",
        &uv,
        crate::binary_check::Linkage::HostBuild,
    )
    .with_context(|| format!("the bootstrapped {} is not an aarch64 uv", uv.display()))?;
    println!("      uv: {} ({})", uv.display(), checked.summary);
    Ok(())
}

/// `platform.machine()` of the venv's python, run like every sandboxed command.
fn python_machine_in(ctx: &Ctx, python: &Path) -> Result<String> {
    let mut c = ctx.command(python);
    c.args(["-I", "-c", "import platform; print(platform.machine())"]);
    let ran = c.succeeds(QUICK)?;
    Ok(ran.stdout().trim().to_string())
}

/// The ktx-base and ktx-runtime unit tests built for [`TRIPLE`] (cargo-zigbuild) and run
/// under qemu (`CARGO_TARGET_<TRIPLE>_RUNNER`); returns the wall time.
pub fn workspace_tests(root: &Path) -> Result<Duration> {
    ensure_binfmt()?;
    which(QEMU)
        .with_context(|| format!("no {QEMU} on PATH: `apt-get install qemu-user-static`"))?;
    let bin = crate::dist::cross::ensure_tools(root)?;
    crate::dist::cross::ensure_rust_target(TRIPLE)?;
    let zigbuild = bin.join(crate::workspace::exe_name("cargo-zigbuild"));
    let mut parts = vec![bin];
    if let Some(p) = std::env::var_os("PATH") {
        parts.extend(std::env::split_paths(&p));
    }
    let started = Instant::now();
    let runner = format!(
        "CARGO_TARGET_{}_RUNNER",
        TRIPLE.to_uppercase().replace('-', "_")
    );
    println!(
        "==> {TRIPLE}: cargo-zigbuild test -p ktx-base -p ktx-runtime --lib ({runner}={QEMU})"
    );
    // `cargo-zigbuild test`: the `cargo zigbuild` subcommand only builds.
    let status = Command::new(&zigbuild)
        .args([
            "test",
            "--target",
            TRIPLE,
            "-p",
            "ktx-base",
            "-p",
            "ktx-runtime",
            "--lib",
        ])
        .current_dir(root)
        .env("PATH", std::env::join_paths(parts)?)
        .env(&runner, QEMU)
        .status()
        .with_context(|| format!("cannot run {}", zigbuild.display()))?;
    if !status.success() {
        bail!("the {TRIPLE} unit tests failed under qemu ({status}); their output is above");
    }
    Ok(started.elapsed())
}
