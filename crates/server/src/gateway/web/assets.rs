//! The browser client's files, embedded in the binary when it is built: everything in
//! `crates/server/web/` (but hidden files), served at `/` with its media type, an `ETag`
//! and a cache policy. A file under `assets/` (a bundler's output, named by the hash of
//! its content) is cached for a year; everything else, `index.html` first, is
//! revalidated on every load, so an upgrade of the server reaches browsers at once.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use include_dir::{include_dir, Dir};

use super::{plain, Reply};

/// The client, as it was when the binary was built.
static CLIENT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// Files that are never served from a directory of assets: hidden ones.
fn hidden(path: &str) -> bool {
    path.split('/').any(|segment| segment.starts_with('.'))
}

/// The media type of a file name, for the types a browser client is made of.
fn media_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

struct Asset {
    body: Bytes,
    media_type: &'static str,
    etag: HeaderValue,
    cache: &'static str,
}

/// The files served at `/`, by path.
pub(crate) struct Assets {
    files: HashMap<String, Asset>,
}

impl Assets {
    /// The files built into the binary.
    pub(crate) fn embedded() -> Assets {
        Assets::from_dir(&CLIENT)
    }

    /// The files of `dir`, with their tags computed once.
    pub(crate) fn from_dir(dir: &'static Dir<'static>) -> Assets {
        let mut files = HashMap::new();
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            pending.extend(dir.dirs());
            for file in dir.files() {
                let Some(path) = file.path().to_str().map(|p| p.replace('\\', "/")) else { continue };
                if hidden(&path) {
                    continue;
                }
                let digest = ring::digest::digest(&ring::digest::SHA256, file.contents());
                let mut etag = String::from("\"");
                for byte in &digest.as_ref()[..12] {
                    let _ = write!(etag, "{byte:02x}");
                }
                etag.push('"');
                let cache =
                    if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
                let asset = Asset {
                    body: Bytes::from_static(file.contents()),
                    media_type: media_type(&path),
                    etag: HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("\"\"")),
                    cache,
                };
                files.insert(path, asset);
            }
        }
        Assets { files }
    }

    /// How many files, and how many bytes in all.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.files.len(), self.files.values().map(|a| a.body.len()).sum())
    }

    /// The answer to a GET or HEAD of `path`.
    pub(crate) fn serve(&self, method: &Method, path: &str, request: &HeaderMap) -> Reply {
        let name = match path.trim_start_matches('/') {
            "" => "index.html",
            name if name.ends_with('/') => return plain(StatusCode::NOT_FOUND, "not found\n"),
            name => name,
        };
        let Some(asset) = self.files.get(name) else {
            return if name == "index.html" {
                plain(StatusCode::NOT_FOUND, "this server was built without its browser client\n")
            } else {
                plain(StatusCode::NOT_FOUND, "not found\n")
            };
        };
        let fresh =
            request.get_all(IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
                |tag| tag.trim() == "*" || tag.trim().trim_start_matches("W/").as_bytes() == asset.etag.as_bytes(),
            );
        let (status, body) = if fresh {
            (StatusCode::NOT_MODIFIED, Bytes::new())
        } else if method == Method::HEAD {
            (StatusCode::OK, Bytes::new())
        } else {
            (StatusCode::OK, asset.body.clone())
        };
        let mut reply = Reply::new(body.into());
        *reply.status_mut() = status;
        let headers = reply.headers_mut();
        headers.insert(ETAG, asset.etag.clone());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(asset.cache));
        if status == StatusCode::OK {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
            if method == Method::HEAD {
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(asset.body.len()));
            }
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    static FIXTURE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/tests/web");

    async fn body(reply: Reply) -> Bytes {
        reply.into_body().collect().await.expect("a body").to_bytes()
    }

    #[tokio::test]
    async fn files_come_with_their_type_tag_and_cache_policy() {
        let assets = Assets::from_dir(&FIXTURE);
        let none = HeaderMap::new();
        let index = assets.serve(&Method::GET, "/", &none);
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(index.headers()[CACHE_CONTROL], "no-cache");
        let etag = index.headers()[ETAG].clone();
        assert_eq!(body(index).await, FIXTURE.get_file("index.html").expect("in the fixture").contents());

        let script = assets.serve(&Method::GET, "/assets/app-3f2a.js", &none);
        assert_eq!(script.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(script.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
        let style = assets.serve(&Method::GET, "/assets/app-91bc.css", &none);
        assert_eq!(style.headers()[CONTENT_TYPE], "text/css; charset=utf-8");

        let mut asked = HeaderMap::new();
        asked.insert(IF_NONE_MATCH, etag.clone());
        let again = assets.serve(&Method::GET, "/index.html", &asked);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[ETAG], etag);
        assert!(body(again).await.is_empty());

        let head = assets.serve(&Method::HEAD, "/", &none);
        assert_eq!(head.status(), StatusCode::OK);
        assert!(body(head).await.is_empty());
    }

    #[tokio::test]
    async fn hidden_and_missing_files_are_not_found() {
        let assets = Assets::from_dir(&FIXTURE);
        let none = HeaderMap::new();
        for path in ["/.secret", "/assets/", "/nothing.js", "/../Cargo.toml", "/assets/../.secret"] {
            assert_eq!(assets.serve(&Method::GET, path, &none).status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn media_types_follow_the_extension() {
        assert_eq!(media_type("a/b.SVG"), "image/svg+xml");
        assert_eq!(media_type("font.woff2"), "font/woff2");
        assert_eq!(media_type("README"), "application/octet-stream");
    }
}
