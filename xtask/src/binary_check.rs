//! Static checks of a native `ktx` binary against the npm target it is packed for, read with
//! the `object` crate (nothing is executed, so every target is checked on any host):
//!
//! - Linux (`linux-*`): ELF of the right machine, static (no `PT_INTERP`, no imported
//!   symbols), so it runs on old glibc and on musl distributions alike.
//! - macOS (`darwin-*`): 64-bit Mach-O of the right CPU; minimum macOS (`LC_BUILD_VERSION`, or
//!   `LC_VERSION_MIN_MACOSX`) at most 11.0 on arm64 and 10.12 on x64; dylibs only
//!   `/usr/lib/libSystem.B.dylib` (required), `/usr/lib/libiconv.2.dylib` and its
//!   `/usr/lib/libcharset.1.dylib` ([`ALLOWED_DYLIBS`]); on arm64 an
//!   `LC_CODE_SIGNATURE` whose code directory hashes match every page (macOS kills unsigned or
//!   mis-signed arm64 code).
//! - Windows (`win32-*`): PE32+ of the right machine, console subsystem.
//!
//! `cargo xtask dist` checks each binary before packing it; `artifacts-verify` checks every
//! binary packed in the tarball it verifies.

use anyhow::{bail, ensure, Context, Result};
use object::macho::{self, MachHeader64};
use object::read::macho::{LoadCommandVariant, MachHeader};
use object::{Architecture, BinaryFormat, Endianness, Object};

/// The dylibs a darwin binary may link (libSystem is required). libiconv is Rust std's; the
/// zig-linked x86_64 binary also names libcharset, which ships with libiconv in every macOS
/// (Apple's libiconv project, in the dyld shared cache), so it is allowed with it.
pub const ALLOWED_DYLIBS: [&str; 3] = [
    "/usr/lib/libSystem.B.dylib",
    "/usr/lib/libiconv.2.dylib",
    "/usr/lib/libcharset.1.dylib",
];

/// What one binary was found to be (printed by dist and artifacts-verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The npm target it was checked against.
    pub target: String,
    /// One line: format, machine and the facts checked.
    pub summary: String,
}

/// Whether a Linux binary must be static.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    /// Release binaries: static musl.
    Static,
    /// The host's own `cargo build` (`cargo xtask dist --targets host`, a developer build,
    /// linked against the host's glibc): machine and format only.
    HostBuild,
}

/// Checks `data` (the bytes of the binary packed for npm target `target`); the error names
/// the target and what is wrong.
pub fn check(target: &str, data: &[u8], linkage: Linkage) -> Result<Checked> {
    let summary = match target {
        "linux-x64" => elf(data, Architecture::X86_64, linkage),
        "linux-arm64" => elf(data, Architecture::Aarch64, linkage),
        "darwin-x64" => mach_o(data, macho::CPU_TYPE_X86_64, (10, 12), false),
        "darwin-arm64" => mach_o(data, macho::CPU_TYPE_ARM64, (11, 0), true),
        "win32-x64" => pe(data, Architecture::X86_64),
        "win32-arm64" => pe(data, Architecture::Aarch64),
        other => bail!("no static checks are known for npm target `{other}`"),
    }
    .with_context(|| format!("the {target} binary fails its static checks"))?;
    Ok(Checked {
        target: target.to_string(),
        summary,
    })
}

/// [`check`] on the file at `path`.
pub fn check_file(target: &str, path: &std::path::Path, linkage: Linkage) -> Result<Checked> {
    let data = crate::fsx::read(path)?;
    check(target, &data, linkage).with_context(|| format!("checking {}", path.display()))
}

fn parse(data: &[u8], format: BinaryFormat) -> Result<object::File<'_>> {
    let file = object::File::parse(data).context("not an executable object file")?;
    ensure!(
        file.format() == format,
        "is {:?}, expected {format:?}",
        file.format()
    );
    Ok(file)
}

fn expect_arch(file: &object::File<'_>, arch: Architecture) -> Result<()> {
    ensure!(
        file.architecture() == arch && file.is_64(),
        "machine is {:?} ({}-bit), expected 64-bit {arch:?}",
        file.architecture(),
        if file.is_64() { 64 } else { 32 }
    );
    Ok(())
}

fn elf(data: &[u8], arch: Architecture, linkage: Linkage) -> Result<String> {
    use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
    let file = parse(data, BinaryFormat::Elf)?;
    expect_arch(&file, arch)?;
    if linkage == Linkage::HostBuild {
        return Ok(format!("ELF {arch:?} (host build: linkage not checked)"));
    }
    let elf = ElfFile64::<Endianness>::parse(data).context("not a 64-bit ELF file")?;
    let endian = elf.endian();
    let header = elf.elf_header();
    let phdrs = header
        .program_headers(endian, data)
        .context("unreadable ELF program headers")?;
    if let Some(interp) = phdrs
        .iter()
        .find(|p| p.p_type(endian) == object::elf::PT_INTERP)
    {
        let path = interp
            .data(endian, data)
            .ok()
            .map(|b| {
                String::from_utf8_lossy(b)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .unwrap_or_default();
        bail!(
            "is dynamically linked (interpreter {path:?}); Linux binaries must be static musl \
             (`cargo xtask dist` builds *-unknown-linux-musl)"
        );
    }
    use object::ObjectSymbol;
    let imports: Vec<String> = file
        .dynamic_symbols()
        .filter(|s| s.is_undefined())
        .filter_map(|s| s.name().ok().filter(|n| !n.is_empty()).map(str::to_string))
        .collect();
    ensure!(
        imports.is_empty(),
        "imports {} dynamic symbols (first: {:?}); a static binary imports none",
        imports.len(),
        imports.first()
    );
    Ok(format!(
        "ELF {arch:?}, static (no interpreter, no undefined dynamic symbols)"
    ))
}

fn pe(data: &[u8], arch: Architecture) -> Result<String> {
    use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
    let file = parse(data, BinaryFormat::Pe)?;
    expect_arch(&file, arch)?;
    let pe = PeFile64::parse(data).context("not a PE32+ file")?;
    let subsystem = pe.nt_headers().optional_header().subsystem();
    ensure!(
        subsystem == object::pe::IMAGE_SUBSYSTEM_WINDOWS_CUI,
        "subsystem is {subsystem}, expected {} (console): a GUI exe detaches from the terminal",
        object::pe::IMAGE_SUBSYSTEM_WINDOWS_CUI
    );
    Ok(format!("PE32+ {arch:?}, console subsystem"))
}

/// A Mach-O version `X.Y.Z` (nibbles `xxxx.yy.zz`) as (major, minor).
fn major_minor(v: u32) -> (u32, u32) {
    (v >> 16, (v >> 8) & 0xff)
}

fn mach_o(data: &[u8], cpu: macho::CpuType, max_minos: (u32, u32), signed: bool) -> Result<String> {
    let _ = parse(data, BinaryFormat::MachO)?;
    let header = MachHeader64::<Endianness>::parse(data, 0).context("not a 64-bit Mach-O")?;
    let e = header.endian().context("unknown Mach-O byte order")?;
    let got = header.cputype(e);
    ensure!(
        got == cpu,
        "CPU type is {got}, expected {cpu} ({})",
        if cpu == macho::CPU_TYPE_ARM64 {
            "arm64"
        } else {
            "x86_64"
        }
    );
    let mut minos = None;
    let mut dylibs = Vec::new();
    let mut signature = None;
    let mut cmds = header
        .load_commands(e, data, 0)
        .context("unreadable Mach-O load commands")?;
    while let Some(cmd) = cmds.next().context("unreadable Mach-O load command")? {
        match cmd.variant().context("malformed Mach-O load command")? {
            LoadCommandVariant::BuildVersion(bv, _)
                if bv.platform.get(e) == macho::PLATFORM_MACOS =>
            {
                minos = Some(bv.minos.get(e).0);
            }
            LoadCommandVariant::VersionMin(vm) if cmd.cmd() == macho::LC_VERSION_MIN_MACOSX => {
                minos = Some(vm.version.get(e).0);
            }
            LoadCommandVariant::Dylib(d) => {
                let name = cmd
                    .string(e, d.dylib.name)
                    .context("unreadable dylib name")?;
                dylibs.push(String::from_utf8_lossy(name).to_string());
            }
            LoadCommandVariant::LinkeditData(l) if cmd.cmd() == macho::LC_CODE_SIGNATURE => {
                signature = Some((l.dataoff.get(e) as usize, l.datasize.get(e) as usize));
            }
            _ => {}
        }
    }
    let minos = minos.context("no LC_BUILD_VERSION or LC_VERSION_MIN_MACOSX for macOS")?;
    let (maj, min) = major_minor(minos);
    ensure!(
        (maj, min) <= max_minos,
        "minimum macOS is {maj}.{min}, newer than the supported {}.{} (set \
         MACOSX_DEPLOYMENT_TARGET; zig's default is its newest macOS)",
        max_minos.0,
        max_minos.1
    );
    let bad: Vec<&String> = dylibs
        .iter()
        .filter(|d| !ALLOWED_DYLIBS.contains(&d.as_str()))
        .collect();
    ensure!(
        bad.is_empty(),
        "links {bad:?}; only {ALLOWED_DYLIBS:?} are allowed (a framework or a Homebrew library \
         is absent on users' Macs, and a cross link has no stubs for them)"
    );
    ensure!(
        dylibs.iter().any(|d| d == ALLOWED_DYLIBS[0]),
        "does not link {} (linked: {dylibs:?})",
        ALLOWED_DYLIBS[0]
    );
    let sig = match (signature, signed) {
        (Some((off, size)), _) => {
            let pages = code_signature::verify(data, off, size)?;
            format!(", ad-hoc signature valid ({pages} pages)")
        }
        (None, true) => bail!("has no LC_CODE_SIGNATURE: macOS on arm64 refuses unsigned code"),
        (None, false) => String::new(),
    };
    Ok(format!(
        "Mach-O {}, minimum macOS {maj}.{min}, dylibs {}{sig}",
        if cpu == macho::CPU_TYPE_ARM64 {
            "arm64"
        } else {
            "x86_64"
        },
        dylibs.join(", ")
    ))
}

/// The embedded code signature: a SuperBlob whose CodeDirectory holds one hash per page of
/// the file up to `codeLimit` (the layout is Apple's `cs_blobs.h`; all fields big-endian).
mod code_signature {
    use anyhow::{bail, ensure, Context, Result};
    use sha2::{Digest, Sha256};

    const SUPERBLOB: u32 = 0xfade_0cc0;
    const CODE_DIRECTORY: u32 = 0xfade_0c02;
    const SLOT_CODE_DIRECTORY: u32 = 0;
    const HASH_SHA256: u8 = 2;

    fn be32(b: &[u8], at: usize) -> Result<u32> {
        let s = b
            .get(at..at + 4)
            .context("code signature truncated")?
            .try_into()
            .context("code signature truncated")?;
        Ok(u32::from_be_bytes(s))
    }

    fn byte(b: &[u8], at: usize) -> Result<u8> {
        b.get(at).copied().context("code signature truncated")
    }

    /// Checks the signature at `off..off+size` of `file`; returns how many pages it covers.
    pub fn verify(file: &[u8], off: usize, size: usize) -> Result<usize> {
        let blob = file
            .get(off..off.saturating_add(size))
            .context("LC_CODE_SIGNATURE points past the end of the file")?;
        ensure!(
            be32(blob, 0)? == SUPERBLOB,
            "LC_CODE_SIGNATURE data is not an embedded signature (magic {:#x})",
            be32(blob, 0)?
        );
        let count = be32(blob, 8)? as usize;
        let mut cd_at = None;
        for i in 0..count {
            if be32(blob, 12 + 8 * i)? == SLOT_CODE_DIRECTORY {
                cd_at = Some(be32(blob, 16 + 8 * i)? as usize);
            }
        }
        let cd = blob
            .get(cd_at.context("the signature has no code directory")?..)
            .context("the code directory lies outside the signature")?;
        ensure!(
            be32(cd, 0)? == CODE_DIRECTORY,
            "bad code directory magic {:#x}",
            be32(cd, 0)?
        );
        let hash_offset = be32(cd, 16)? as usize;
        let code_slots = be32(cd, 28)? as usize;
        let code_limit = be32(cd, 32)? as usize;
        let hash_size = byte(cd, 36)? as usize;
        let hash_type = byte(cd, 37)?;
        let page_size = 1usize << byte(cd, 39)?;
        if hash_type != HASH_SHA256 || hash_size != 32 {
            bail!("code directory hash type {hash_type} (size {hash_size}); expected SHA-256");
        }
        ensure!(
            code_limit <= off && code_slots == code_limit.div_ceil(page_size),
            "code directory covers {code_slots} pages up to {code_limit}, but the code ends at {off}"
        );
        for page in 0..code_slots {
            let start = page * page_size;
            let end = (start + page_size).min(code_limit);
            let want = cd
                .get(hash_offset + page * hash_size..hash_offset + (page + 1) * hash_size)
                .context("code directory hash slots truncated")?;
            let got = Sha256::digest(&file[start..end]);
            ensure!(
                got.as_slice() == want,
                "page {page} (bytes {start}..{end}) does not match its signed hash: the binary \
                 was modified after signing"
            );
        }
        Ok(code_slots)
    }
}

#[cfg(test)]
mod tests;
