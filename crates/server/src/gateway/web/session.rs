//! Sessions and files for browsers.
//!
//! - `POST /session`, the body a resume token (text/plain): checked like a token login
//!   (paced, banned accounts refused), then set as the `parley_session` cookie
//!   (`HttpOnly; Secure; SameSite=Strict`), which the page's WebSocket sends with its
//!   upgrade for a `hello` with `resume`, and its file links send with every fetch.
//! - `DELETE /session`: revokes the cookie's token and clears the cookie.
//! - `GET /files/ID` and `GET /files/ID/thumbnail`: a shared file, or a preview of a
//!   shared image, for the cookie's account, with the checks the native `download`
//!   makes: a room's file to an account with a session in that room (in the same life
//!   of the room), a private one to its two parties.
//!
//! Both `/session` requests are refused from pages of other sites (`Origin`, as for
//! upgrades). A token is never read from a URL. Files are always attachments, with
//! `nosniff`, and only a short list of media types is ever named: HTML, SVG, XML and
//! anything else a browser might run are served as `application/octet-stream`.

use std::io;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, RETRY_AFTER, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use parley_hub::{HubError, TokenHolder};
use tokio_util::io::ReaderStream;

use super::{plain, Connection, Reply};
use crate::files::thumbnail::{self, ThumbnailError};

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "parley_session";

/// The longest `POST /session` body read.
const MAX_BODY: usize = 1024;

/// Pieces a file is sent in.
const PIECE: usize = 64 * 1024;

/// Media types served as themselves; anything else is `application/octet-stream`.
const SAFE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "video/mp4",
    "video/webm",
    "application/pdf",
    "application/zip",
    "text/plain",
];

/// A file streamed from disk, piece by piece.
pub(crate) type FileBody = StreamBody<
    futures_util::stream::Map<ReaderStream<tokio::fs::File>, fn(io::Result<Bytes>) -> io::Result<Frame<Bytes>>>,
>;

/// What the HTTP gateway answers with: a body in memory, or a file.
pub(crate) type Body = Either<Full<Bytes>, FileBody>;

/// `/session`.
pub(super) async fn session(request: Request<Incoming>, connection: &Connection) -> Reply {
    let site = &connection.shared.web;
    let headers = request.headers();
    if request.method() != Method::POST && request.method() != Method::DELETE {
        let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, "a session is made with POST and ended with DELETE\n");
        reply.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST, DELETE"));
        return reply;
    }
    if !site.origin_allowed(headers) {
        tracing::info!(peer = %connection.peer, origin = ?headers.get(http::header::ORIGIN), "refused a cross-origin session request");
        return plain(StatusCode::FORBIDDEN, "sessions are not made from pages of other sites\n");
    }
    let address = Some(site.client(connection.peer, headers).ip());
    let hub = &connection.shared.hub;
    if request.method() == Method::DELETE {
        if let Some(token) = cookie(headers) {
            // Whatever the token was, the cookie goes.
            if let Ok(holder) = hub.check_token(token, address).await {
                if let Err(e) = hub.revoke_token(holder.account.id, holder.token).await {
                    tracing::warn!("revoking a session cookie's token failed: {e}");
                    return plain(StatusCode::SERVICE_UNAVAILABLE, "the session could not be ended; try again\n");
                }
            }
        }
        return with_cookie(StatusCode::NO_CONTENT, "", 0);
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "a session token is a short line of text\n"),
    };
    let Ok(token) = std::str::from_utf8(&body).map(str::trim) else {
        return plain(StatusCode::BAD_REQUEST, "a session token is text\n");
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return plain(StatusCode::BAD_REQUEST, "send the session token as the body, as the server gave it\n");
    }
    match hub.check_token(token.to_owned(), address).await {
        Ok(_) => {
            let max_age = connection.shared.limits.session_idle_days.min(36_500).saturating_mul(24 * 3600);
            with_cookie(StatusCode::NO_CONTENT, token, max_age)
        }
        Err(e) => refused(&e),
    }
}

/// A reply setting the session cookie (clearing it with an empty token and age 0).
fn with_cookie(status: StatusCode, token: &str, max_age: u64) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    let cookie = format!("{COOKIE_NAME}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        reply.headers_mut().insert(SET_COOKIE, value);
    }
    reply.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

/// The HTTP answer to a refused token.
fn refused(e: &HubError) -> Reply {
    match e {
        HubError::BadToken => plain(StatusCode::UNAUTHORIZED, "unknown, revoked or expired session: log in again\n"),
        HubError::TooManyAttempts { retry_after_secs } => {
            let mut reply = plain(StatusCode::TOO_MANY_REQUESTS, "too many failed attempts; try again later\n");
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                reply.headers_mut().insert(RETRY_AFTER, value);
            }
            reply
        }
        HubError::ServerBanned { .. } => plain(StatusCode::FORBIDDEN, "you are banned from this server\n"),
        HubError::NoAccounts => plain(StatusCode::NOT_FOUND, "this server keeps no accounts\n"),
        _ => plain(StatusCode::SERVICE_UNAVAILABLE, "the server cannot check sessions now; try again\n"),
    }
}

/// The `parley_session` cookie's value, if the request has one.
pub(crate) fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// `GET /files/ID` and `GET /files/ID/thumbnail`.
pub(super) async fn file(request: Request<Incoming>, connection: &Connection) -> Response<Body> {
    let left = |reply: Reply| reply.map(Either::Left);
    let path = request.uri().path();
    let (id, thumb) = match path.trim_start_matches("/files/").split_once('/') {
        None => (path.trim_start_matches("/files/").to_owned(), false),
        Some((id, "thumbnail")) => (id.to_owned(), true),
        Some(_) => return left(plain(StatusCode::NOT_FOUND, "no such page\n")),
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, "files are fetched with GET\n");
        reply.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return left(reply);
    }
    let shared = &connection.shared;
    let Some(files) = shared.files.clone() else {
        return left(plain(StatusCode::NOT_FOUND, "this server takes no files\n"));
    };
    let headers = request.headers();
    let Some(token) = cookie(headers) else {
        return left(plain(StatusCode::UNAUTHORIZED, "log in first: files are for the accounts that may see them\n"));
    };
    let address = Some(shared.web.client(connection.peer, headers).ip());
    let holder: TokenHolder = match shared.hub.check_token(token, address).await {
        Ok(holder) => holder,
        Err(e) => return left(refused(&e)),
    };
    let Some(share) = files.share(&id).await else {
        return left(plain(StatusCode::NOT_FOUND, "no such file\n"));
    };
    if !share.visible_to(&holder.whereabouts) {
        return left(plain(StatusCode::FORBIDDEN, "that file is not yours to see\n"));
    }
    if thumb {
        return left(match thumbnail::thumbnail(&files, &share).await {
            Ok(png) => {
                crate::metrics::FileBytes::add(&files.bytes.sent, png.len());
                let mut reply = Response::new(Full::new(png));
                let headers = reply.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400"));
                reply
            }
            Err(ThumbnailError::NotAnImage(why)) => plain_owned(StatusCode::UNSUPPORTED_MEDIA_TYPE, why),
            Err(e @ (ThumbnailError::Undecodable(_) | ThumbnailError::TimedOut)) => {
                tracing::info!(file = id, "no thumbnail: {e}");
                plain_owned(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            Err(ThumbnailError::Io(e)) => {
                tracing::warn!(file = id, "no thumbnail: {e}");
                plain(StatusCode::NOT_FOUND, "the file is gone\n")
            }
        });
    }
    let file = match tokio::fs::File::open(files.content_path(&share.info.sha256)).await {
        Ok(file) => file,
        Err(_) => return left(plain(StatusCode::NOT_FOUND, "the file is gone\n")),
    };
    let size = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(_) => return left(plain(StatusCode::NOT_FOUND, "the file is gone\n")),
    };
    crate::metrics::FileBytes::add(&files.bytes.sent, usize::try_from(size).unwrap_or(usize::MAX));
    let frame: fn(io::Result<Bytes>) -> io::Result<Frame<Bytes>> = |piece| piece.map(Frame::data);
    let body = if request.method() == Method::HEAD {
        Either::Left(Full::new(Bytes::new()))
    } else {
        Either::Right(StreamBody::new(ReaderStream::with_capacity(file, PIECE).map(frame)))
    };
    let mut reply = Response::new(body);
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(served_type(&share.info.media_type)));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&attachment(&share.info.name)) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    reply
}

fn plain_owned(status: StatusCode, text: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    reply
}

/// The media type a file is served as: its own when it is on the short list of types
/// no browser runs, else `application/octet-stream`.
pub(crate) fn served_type(media_type: &str) -> &'static str {
    let essence = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match SAFE_TYPES.iter().find(|t| **t == essence) {
        Some(&"text/plain") => "text/plain; charset=utf-8",
        Some(safe) => safe,
        None => "application/octet-stream",
    }
}

/// `attachment; filename*=UTF-8''…` (RFC 6266, RFC 8187): every byte but the
/// unreserved ones percent-encoded.
pub(crate) fn attachment(name: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("attachment; filename*=UTF-8''");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harmless_types_are_named_and_names_are_encoded() {
        assert_eq!(served_type("image/PNG"), "image/png");
        assert_eq!(served_type("text/plain; charset=latin1"), "text/plain; charset=utf-8");
        for hostile in ["text/html", "image/svg+xml", "application/xml", "text/xml", "application/javascript", ""] {
            assert_eq!(served_type(hostile), "application/octet-stream", "{hostile}");
        }
        assert_eq!(attachment("plan é.txt"), "attachment; filename*=UTF-8''plan%20%C3%A9.txt");
        assert_eq!(attachment("a\"b\r\n;c"), "attachment; filename*=UTF-8''a%22b%0D%0A%3Bc");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; parley_session=abc-_9; b=2"));
        assert_eq!(cookie(&headers).as_deref(), Some("abc-_9"));
        let mut none = HeaderMap::new();
        none.append(COOKIE, HeaderValue::from_static("parley_session_x=1; parley_session="));
        assert_eq!(cookie(&none), None);
    }
}
