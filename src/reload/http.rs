//! The HTTP health check, sent through a tunnel of the host's SSH connection
//! (a direct-tcpip channel), so it reaches the address as the host sees it
//! and needs no open port and no curl on the host.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::template::{Cut, OutputMask};

/// A response body beyond this is cut: a health check is small.
const BODY_LIMIT: u64 = 1024 * 1024;

/// Where an `http://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Why a health check URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` is an https:// URL, but the health check speaks plain HTTP to the app server through the SSH connection: use http:// and the address the app server listens on")]
    Https(String),
    #[error("`{0}` is not an http:// URL (the check talks to the app server directly)")]
    NotHttp(String),
    #[error("`{url}` contains {bad:?}, which cannot go into a request line")]
    BadCharacter { url: String, bad: char },
    #[error("`{0}` has user information (`@`), which the health check does not send")]
    UserInfo(String),
    #[error("`{url}`: bad port `{port}`")]
    BadPort { url: String, port: String },
    #[error("`{0}` has no host")]
    NoHost(String),
}

/// Why no HTTP response came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("sending the request: {0}")]
    Send(String),
    #[error("reading the response: {0}")]
    Read(String),
    #[error("no response within {0}s")]
    Timeout(String),
    #[error("the connection closed without a response (is the app listening at that address?)")]
    Closed,
    #[error("not an HTTP response: `{0}`")]
    NotHttp(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Parses `http://host[:port][/path]`. HTTPS is refused: the check runs on
/// the host's loopback, where the app server speaks plain HTTP. herd checks
/// every URL with this before it contacts any host. The scheme is
/// case-insensitive (RFC 3986): `HTTP://` is `http://`.
pub fn parse_url(url: &str) -> Result<Url, UrlError> {
    let scheme = |name: &str| {
        url.get(..name.len())
            .filter(|head| head.eq_ignore_ascii_case(name))
            .map(|_| &url[name.len()..])
    };
    if scheme("https://").is_some() {
        return Err(UrlError::Https(url.to_string()));
    }
    let rest = scheme("http://").ok_or_else(|| UrlError::NotHttp(url.to_string()))?;
    if let Some(bad) = rest.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::BadCharacter {
            url: url.to_string(),
            bad,
        });
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(UrlError::UserInfo(url.to_string()));
    }
    // A fragment never goes to the server.
    let path = path.split('#').next().unwrap_or(path);
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| UrlError::BadPort {
                    url: url.to_string(),
                    port: port.to_string(),
                })?;
            (host, port)
        }
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(UrlError::NoHost(url.to_string()));
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path,
    })
}

/// Sends `GET` for `url` over `stream` and reads the whole response.
/// `mask` masks what herd quotes of a response that is not HTTP.
pub async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &Url,
    timeout: Duration,
    mask: &OutputMask,
) -> Result<Response, HttpError> {
    let exchange = async {
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {}:{}\r\nUser-Agent: herd\r\nConnection: close\r\n\r\n",
            url.path, url.host, url.port
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| HttpError::Send(e.to_string()))?;
        stream
            .flush()
            .await
            .map_err(|e| HttpError::Send(e.to_string()))?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(BODY_LIMIT)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| HttpError::Read(e.to_string()))?;
        parse_response(&raw, mask)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HttpError::Timeout(timeout.as_secs_f64().to_string()))?
}

fn parse_response(raw: &[u8], mask: &OutputMask) -> Result<Response, HttpError> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    if status_line.is_empty() {
        return Err(HttpError::Closed);
    }
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| HttpError::NotHttp(mask.cut(status_line, Cut::Head(80))))?;
    Ok(Response {
        status,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8000/healthz?x=1").unwrap(),
            Url {
                host: "127.0.0.1".into(),
                port: 8000,
                path: "/healthz?x=1".into()
            }
        );
        assert_eq!(parse_url("http://localhost").unwrap().port, 80);
        assert_eq!(
            parse_url("HTTP://127.0.0.1:8000/").unwrap(),
            parse_url("http://127.0.0.1:8000/").unwrap()
        );
        assert_eq!(parse_url("Http://x/Path").unwrap().path, "/Path");
        assert!(parse_url("HTTPS://x/")
            .unwrap_err()
            .to_string()
            .contains("is an https:// URL"));
        assert_eq!(parse_url("http://[::1]:81/").unwrap().host, "::1");
        assert_eq!(parse_url("http://x?a=1#top").unwrap().path, "/?a=1");
        assert_eq!(
            parse_url("https://127.0.0.1:8000/healthz")
                .unwrap_err()
                .to_string(),
            "`https://127.0.0.1:8000/healthz` is an https:// URL, but the health check speaks plain HTTP to the app server through the SSH connection: use http:// and the address the app server listens on"
        );
        for bad in [
            "http://x:port/",
            "http://x:0/",
            "http://x:99999/",
            "http:///healthz",
            "http://user@x/",
            "http://x/a b",
            "ftp://x/",
            "127.0.0.1:8000/healthz",
            "",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_request_and_its_response() {
        let (client, mut server) = tokio::io::duplex(4096);
        let serving = tokio::spawn(async move {
            let mut buffer = vec![0; 1024];
            let n = server.read(&mut buffer).await.unwrap();
            let request = String::from_utf8_lossy(&buffer[..n]).to_string();
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok v2\n")
                .await
                .unwrap();
            request
        });
        let url = parse_url("http://127.0.0.2:8000/healthz").unwrap();
        let response = get(client, &url, Duration::from_secs(5), &OutputMask::default())
            .await
            .unwrap();
        assert_eq!(
            response,
            Response {
                status: 200,
                body: "ok v2\n".into()
            }
        );
        let request = serving.await.unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.0\r\nHost: 127.0.0.2:8000\r\n"),
            "{request}"
        );
    }

    #[test]
    fn garbage_is_not_a_response() {
        assert!(parse_response(b"", &OutputMask::default()).is_err());
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n", &OutputMask::default()).is_err());
        assert_eq!(
            parse_response(b"HTTP/1.0 503 Unavailable\r\n\r\n", &OutputMask::default())
                .unwrap()
                .status,
            503
        );
    }

    #[test]
    fn a_status_line_quoted_cut_leaves_no_piece_of_a_secret() {
        let mask = OutputMask::default();
        mask.secrets.record("S3cr3tToken");
        let line = format!("{}S3cr3tToken\r\n", "x".repeat(75));
        let error = parse_response(line.as_bytes(), &mask)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!("not an HTTP response: `{}***`", "x".repeat(75))
        );
    }
}
