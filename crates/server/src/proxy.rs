//! The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer or reverse proxy
//! in front of the server opens each connection with a header naming the client's own
//! address. On a listener with `proxy_protocol = true` that header is read first, byte
//! for byte so that nothing after it is consumed, and parsed by `ppp`.

use std::io;
use std::net::SocketAddr;

use ppp::v1;
use ppp::v2;
use ppp::HeaderResult;
use tokio::io::{AsyncRead, AsyncReadExt};

/// A version 1 header is at most 107 bytes, CRLF included.
const MAX_V1: usize = 107;

/// Version 2's fixed part: the 12-byte signature, version and command, family and
/// protocol, and the length of the rest.
const V2_FIXED: usize = 16;

/// Version 2's signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Why a connection's PROXY header is unusable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// The connection does not start with a PROXY header.
    #[error("no PROXY protocol header")]
    Missing,
    /// The header is malformed.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    /// Reading failed, or the connection ended first.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
}

/// Reads the PROXY header at the start of `stream`; returns the client's address, or
/// `None` when the proxy speaks for itself (version 1 `UNKNOWN`, version 2 `LOCAL`, a
/// health check): the connection's own peer is then the client.
pub(crate) async fn read_header<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Option<SocketAddr>, ProxyError> {
    let mut header = vec![0u8; 6];
    stream.read_exact(&mut header).await?;
    if header == b"PROXY " {
        // Version 1: one line. Byte by byte, as what follows it is the client's.
        while !header.ends_with(b"\r\n") {
            if header.len() == MAX_V1 {
                return Err(ProxyError::Malformed("a version 1 line over 107 bytes".into()));
            }
            header.push(stream.read_u8().await?);
        }
    } else if V2_SIGNATURE.starts_with(&header) {
        header.resize(V2_FIXED, 0);
        stream.read_exact(&mut header[6..]).await?;
        if &header[..12] != V2_SIGNATURE {
            return Err(ProxyError::Missing);
        }
        let rest = usize::from(u16::from_be_bytes([header[14], header[15]]));
        header.resize(V2_FIXED + rest, 0);
        stream.read_exact(&mut header[V2_FIXED..]).await?;
    } else {
        return Err(ProxyError::Missing);
    }
    parse(&header)
}

fn parse(header: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(header)) => Ok(match header.addresses {
            v1::Addresses::Tcp4(ip) => Some(SocketAddr::from((ip.source_address, ip.source_port))),
            v1::Addresses::Tcp6(ip) => Some(SocketAddr::from((ip.source_address, ip.source_port))),
            v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(header)) => Ok(match (header.command, header.addresses) {
            (v2::Command::Local, _) | (_, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => None,
            (v2::Command::Proxy, v2::Addresses::IPv4(ip)) => {
                Some(SocketAddr::from((ip.source_address, ip.source_port)))
            }
            (v2::Command::Proxy, v2::Addresses::IPv6(ip)) => {
                Some(SocketAddr::from((ip.source_address, ip.source_port)))
            }
        }),
        HeaderResult::V1(Err(e)) => Err(ProxyError::Malformed(format!("{e:?}"))),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Malformed(format!("{e:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut stream = bytes;
        let result = read_header(&mut stream).await;
        (result, stream.to_vec())
    }

    #[tokio::test]
    async fn version_1_names_the_client_and_leaves_the_rest() {
        let (client, rest) = read(b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 6667\r\nNICK ann\r\n").await;
        assert_eq!(client.expect("valid"), Some("203.0.113.7:51000".parse().expect("an address")));
        assert_eq!(rest, b"NICK ann\r\n");
        let (client, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n").await;
        assert_eq!(client.expect("valid"), Some("[2001:db8::7]:51000".parse().expect("an address")));
        let (client, rest) = read(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(client.expect("valid"), None);
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn version_2_names_the_client_and_leaves_the_rest() {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend_from_slice(&[0x21, 0x11, 0, 12, 203, 0, 113, 7, 192, 0, 2, 1, 0xc7, 0x38, 0x1a, 0x0b]);
        header.extend_from_slice(b"hello");
        let (client, rest) = read(&header).await;
        assert_eq!(client.expect("valid"), Some("203.0.113.7:51000".parse().expect("an address")));
        assert_eq!(rest, b"hello");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read(&local).await.0.expect("valid"), None);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        assert!(matches!(read(b"NICK ann\r\nUSER a 0 * :b\r\n").await.0, Err(ProxyError::Missing)));
        assert!(matches!(read(b"PROXY TCP4 nonsense\r\n").await.0, Err(ProxyError::Malformed(_))));
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert!(matches!(read(long.as_bytes()).await.0, Err(ProxyError::Malformed(_))));
        assert!(matches!(read(b"PROXY TCP4 1.2.3.4").await.0, Err(ProxyError::Io(_))));
        assert!(matches!(read(b"\r\n\r\n\0\r\nQUI").await.0, Err(ProxyError::Io(_))));
    }
}
