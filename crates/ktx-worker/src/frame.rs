//! Frames on the worker channel: a 4-byte big-endian length, then that many bytes of JSON.
//! The worker (`python-runtime/src/ktx_worker/channel.py`) uses the same layout and limit.

use std::io::{self, Read, Write};

/// The largest frame either side accepts: 64 MiB.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Write one frame (header and body in one write, so a small frame is one syscall).
pub fn write(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n as usize <= MAX_FRAME)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "request of {} bytes is over the {MAX_FRAME}-byte frame limit",
                    body.len()
                ),
            )
        })?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

/// Read one frame; `Ok(None)` at a clean end of stream (between frames).
pub fn read(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("reply frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sees_a_clean_end() {
        let mut buf = Vec::new();
        write(&mut buf, b"{\"a\":1}").unwrap();
        write(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read(&mut r).unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(read(&mut r).unwrap().unwrap(), b"");
        assert!(read(&mut r).unwrap().is_none());
    }

    #[test]
    fn refuses_a_cut_or_oversized_frame() {
        let mut r: &[u8] = &[0, 0];
        assert_eq!(
            read(&mut r).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let mut r: &[u8] = &[0, 0, 0, 5, b'x'];
        assert!(read(&mut r).is_err());
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        let mut r: &[u8] = &huge;
        assert_eq!(read(&mut r).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
