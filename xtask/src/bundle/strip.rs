//! Drops the custom sections (id 0: names, DWARF, producers) of a WebAssembly module.
//!
//! A module is the 8-byte header (`\0asm`, version 1) followed by sections, each `id: u8`,
//! `size: LEB128 u32`, `payload[size]`. Custom sections carry no semantics (the spec lets an
//! engine ignore them), so dropping them changes nothing the module does; every other
//! section is copied byte for byte, in order.

use anyhow::{bail, Result};

/// The module header: magic and version 1.
pub const HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";

/// Reads an unsigned LEB128 u32 at `pos`; returns the value and the position after it.
fn read_u32_leb(bytes: &[u8], mut pos: usize) -> Result<(u32, usize)> {
    let mut value: u64 = 0;
    for shift in (0..35).step_by(7) {
        let Some(&b) = bytes.get(pos) else {
            bail!("truncated section size at byte {pos}");
        };
        pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return u32::try_from(value)
                .map(|v| (v, pos))
                .map_err(|_| anyhow::anyhow!("section size over u32 at byte {pos}"));
        }
    }
    bail!("section size LEB128 longer than 5 bytes at byte {pos}")
}

/// `module` without its custom sections. Fails on anything that is not a well-formed
/// sequence of sections after a version-1 header.
pub fn strip_custom_sections(module: &[u8]) -> Result<Vec<u8>> {
    if module.len() < 8 || module[..8] != HEADER {
        bail!("not a WebAssembly version 1 module (the first 8 bytes are not \\0asm 01 00 00 00)");
    }
    let mut out = Vec::with_capacity(module.len());
    out.extend_from_slice(&HEADER);
    let mut pos = 8;
    while pos < module.len() {
        let start = pos;
        let id = module[pos];
        let (size, payload) = read_u32_leb(module, pos + 1)?;
        let end = payload
            .checked_add(size as usize)
            .filter(|&e| e <= module.len())
            .ok_or_else(|| {
                anyhow::anyhow!("section {id} at byte {start} runs past the end of the module")
            })?;
        if id != 0 {
            out.extend_from_slice(&module[start..end]);
        }
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section: id, LEB128 size, payload.
    fn section(id: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![id];
        let mut n = payload.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                s.push(b);
                break;
            }
            s.push(b | 0x80);
        }
        s.extend_from_slice(payload);
        s
    }

    fn custom(name: &str, data: &[u8]) -> Vec<u8> {
        let mut p = vec![name.len() as u8];
        p.extend_from_slice(name.as_bytes());
        p.extend_from_slice(data);
        section(0, &p)
    }

    #[test]
    fn drops_custom_sections_and_keeps_the_rest_in_order() {
        // (module (func (export "f") (result i32) i32.const 42)), hand-assembled.
        let ty = section(1, &[1, 0x60, 0, 1, 0x7f]);
        let func = section(3, &[1, 0]);
        let export = section(7, &[1, 1, b'f', 0, 0]);
        let code = section(10, &[1, 4, 0, 0x41, 42, 0x0b]);
        let mut module = HEADER.to_vec();
        module.extend(custom("producers", b"rustc"));
        module.extend(&ty);
        module.extend(&func);
        // A custom section over 127 bytes: a two-byte LEB128 size.
        module.extend(custom(".debug_info", &[0xAB; 300]));
        module.extend(&export);
        module.extend(&code);
        module.extend(custom("name", b"\0\x03abc"));

        let stripped = strip_custom_sections(&module).unwrap();
        let mut want = HEADER.to_vec();
        for s in [&ty, &func, &export, &code] {
            want.extend(s);
        }
        assert_eq!(stripped, want);
        // Idempotent, and a module without custom sections is unchanged.
        assert_eq!(strip_custom_sections(&stripped).unwrap(), stripped);
    }

    #[test]
    fn refuses_malformed_modules() {
        assert!(strip_custom_sections(b"\0asm\x02\0\0\0").is_err());
        assert!(strip_custom_sections(b"not wasm at all").is_err());
        let mut m = HEADER.to_vec();
        m.extend([1, 10, 0]); // declares 10 bytes, has 1
        assert!(strip_custom_sections(&m).is_err());
        let mut m = HEADER.to_vec();
        m.extend([1, 0x80, 0x80]); // LEB128 cut short
        assert!(strip_custom_sections(&m).is_err());
        let mut m = HEADER.to_vec();
        m.extend([1, 0xff, 0xff, 0xff, 0xff, 0x7f]); // over u32
        assert!(strip_custom_sections(&m).is_err());
    }
}
