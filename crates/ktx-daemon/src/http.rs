//! A deliberately tiny HTTP/1.1 client for the loopback daemon.
//!
//! It connects with `std::net::TcpStream` to `127.0.0.1:<port>` and nothing else: it never
//! reads `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` or `NO_PROXY`, so no proxy can ever see the
//! token or the payloads, whatever the user's environment says. Requests always carry `Host`,
//! `Authorization: Bearer`, and `Content-Length`; responses must carry `Content-Length` (the
//! daemon always sends it) unless the server closes the connection. Connections are kept alive
//! and reused by [`crate::Client`].

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Largest header block we accept from the daemon.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body we accept from the daemon.
const MAX_BODY: usize = 512 * 1024 * 1024;

/// One kept-alive connection to the daemon.
#[derive(Debug)]
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
    port: u16,
}

/// A parsed response.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server will close the connection after this response.
    pub close: bool,
}

/// Errors of one exchange, telling whether any response byte arrived (a request that failed
/// before that on a reused connection may be retried on a fresh one).
#[derive(Debug)]
pub(crate) struct ExchangeError {
    pub op: &'static str,
    pub source: io::Error,
    pub nothing_received: bool,
}

impl Conn {
    /// Connect to `127.0.0.1:port` with a bounded connect time.
    pub(crate) fn connect(port: u16, timeout: Duration) -> io::Result<Conn> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::with_capacity(16 * 1024, stream),
            port,
        })
    }

    /// Send one request and read its response. `read_timeout` bounds each read (None: wait).
    pub(crate) fn exchange(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&[u8]>,
        read_timeout: Option<Duration>,
    ) -> Result<Response, ExchangeError> {
        let fail = |op, source, nothing_received| ExchangeError {
            op,
            source,
            nothing_received,
        };
        let stream = self.reader.get_mut();
        stream
            .set_read_timeout(read_timeout)
            .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(30))))
            .map_err(|e| fail("configuring the connection", e, true))?;
        let body = body.unwrap_or(&[]);
        let mut request = Vec::with_capacity(256 + body.len());
        // Writing into a Vec cannot fail.
        let _ = write!(
            request,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\n\
             Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.port,
            body.len()
        );
        request.extend_from_slice(body);
        stream
            .write_all(&request)
            .and_then(|()| stream.flush())
            .map_err(|e| fail("sending the request", e, true))?;
        self.read_response(method == "HEAD")
    }

    fn read_line(&mut self, buf: &mut Vec<u8>, budget: &mut usize) -> io::Result<usize> {
        buf.clear();
        let n = (&mut self.reader)
            .take(*budget as u64 + 1)
            .read_until(b'\n', buf)?;
        if n > *budget {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response headers too large",
            ));
        }
        *budget -= n;
        Ok(n)
    }

    fn read_response(&mut self, head_only: bool) -> Result<Response, ExchangeError> {
        let mut budget = MAX_HEAD;
        let mut line = Vec::new();
        let n = self
            .read_line(&mut line, &mut budget)
            .map_err(|e| ExchangeError {
                op: "reading the response",
                nothing_received: true,
                source: e,
            })?;
        let fail = |source| ExchangeError {
            op: "reading the response",
            source,
            nothing_received: false,
        };
        let bad = |msg: String| fail(io::Error::new(io::ErrorKind::InvalidData, msg));
        if n == 0 {
            return Err(ExchangeError {
                op: "reading the response",
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before any response",
                ),
                nothing_received: true,
            });
        }
        let status_line = String::from_utf8_lossy(&line).trim_end().to_string();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        if !version.starts_with("HTTP/1.") {
            return Err(bad(format!("bad status line {status_line:?}")));
        }
        let mut close = version == "HTTP/1.0";
        let mut length: Option<usize> = None;
        loop {
            self.read_line(&mut line, &mut budget).map_err(fail)?;
            if line.is_empty() {
                return Err(bad("connection closed inside the headers".into()));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if text.is_empty() {
                break;
            }
            let Some((name, value)) = text.split_once(':') else {
                return Err(bad(format!("bad header line {text:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| bad(format!("bad Content-Length {value:?}")))?,
                );
            } else if name.eq_ignore_ascii_case("connection") {
                if value.eq_ignore_ascii_case("close") {
                    close = true;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad(format!("unsupported Transfer-Encoding {value:?}")));
            }
        }
        let mut body = Vec::new();
        if !head_only {
            match length {
                Some(len) if len > MAX_BODY => {
                    return Err(bad(format!("response body of {len} bytes is too large")))
                }
                Some(len) => {
                    body.resize(len, 0);
                    self.reader.read_exact(&mut body).map_err(fail)?;
                }
                None if close => {
                    (&mut self.reader)
                        .take(MAX_BODY as u64)
                        .read_to_end(&mut body)
                        .map_err(fail)?;
                }
                None => return Err(bad("response without Content-Length".into())),
            }
        }
        Ok(Response {
            status,
            body,
            close,
        })
    }
}
