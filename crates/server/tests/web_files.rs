//! Files served to browsers over real sockets: `GET /files/ID` for the session cookie's
//! account, with the checks of the native `download`, always as an attachment with
//! `nosniff`, HTML and SVG never named as such; and thumbnails, made within limits,
//! with hostile images (a decompression bomb, huge dimensions, a truncated file)
//! refused while the server goes on serving.

mod support;

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parley_client::{Audience, Client, ErrorCode};
use parley_server::{Config, Listener, ListenerKind};
use support::remembered::account_with_token;
use support::{http, HttpAnswer};

async fn web_server() -> (support::TestServer, SocketAddr) {
    let server = support::start_with(|config: &mut Config| {
        config.listeners.push(Listener::new(ListenerKind::Web, false, "127.0.0.1:0"));
        config.limits.flood_rate_per_sec = 0;
    })
    .await;
    let web = server.bound.iter().find(|b| b.kind == ListenerKind::Web).expect("a web listener").addr;
    (server, web)
}

/// `GET path` with the session cookie `token`, if any.
async fn get(web: SocketAddr, path: &str, token: Option<&str>) -> HttpAnswer {
    let cookie = token.map(|t| format!("Cookie: parley_session={t}\r\n")).unwrap_or_default();
    http(web, &format!("GET {path} HTTP/1.1\r\nHost: {web}\r\n{cookie}Connection: close\r\n\r\n")).await
}

/// A directory of files to share, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("parley-web-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory");
        Dir(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("written");
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn share(owner: &Client, path: &Path, room: &str) -> String {
    owner.send_file(path, Audience::Room(room.into()), |_| {}).await.expect("shared").info.file
}

#[tokio::test]
async fn a_shared_file_is_an_attachment_for_the_accounts_that_may_see_it() {
    let (server, web) = web_server().await;
    let dir = Dir::new("attach");
    let (alice, alice_token) = account_with_token(server.native, "alice").await;
    let (bob, bob_token) = account_with_token(server.native, "bob").await;
    alice.join("staff").await.expect("joins");
    let page = b"<html><script>alert(document.cookie)</script></html>";
    let html = share(&alice, &dir.file("report.html", page), "staff").await;
    let svg = share(&alice, &dir.file("logo.svg", b"<svg onload=alert(1)/>"), "staff").await;
    let notes = share(&alice, &dir.file("plan é.txt", b"the plan\n"), "staff").await;

    let path = format!("/files/{html}");
    assert_eq!(get(web, &path, None).await.status, 401, "no cookie");
    assert_eq!(get(web, &path, Some(&"C".repeat(43))).await.status, 401, "a cookie of no session");
    let got = get(web, &path, Some(&alice_token)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, page);
    assert_eq!(got.header("content-type"), Some("application/octet-stream"), "HTML is never served as HTML");
    assert_eq!(got.header("content-disposition"), Some("attachment; filename*=UTF-8''report.html"));
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert!(got.header("content-security-policy").is_some());
    let got = get(web, &format!("/files/{svg}"), Some(&alice_token)).await;
    assert_eq!(got.header("content-type"), Some("application/octet-stream"), "nor SVG");
    let got = get(web, &format!("/files/{notes}"), Some(&alice_token)).await;
    assert_eq!(got.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(got.header("content-disposition"), Some("attachment; filename*=UTF-8''plan%20%C3%A9.txt"));

    // Bob is in no session of the room: not his to see, until he joins it.
    assert_eq!(get(web, &path, Some(&bob_token)).await.status, 403);
    bob.join("staff").await.expect("joins");
    assert_eq!(get(web, &path, Some(&bob_token)).await.status, 200);
    assert_eq!(get(web, "/files/0123456789abcdef", Some(&bob_token)).await.status, 404);

    // A private share: its two parties, nobody else.
    let (_carol, carol_token) = account_with_token(server.native, "carol").await;
    let sent = alice.send_file(&dir.file("for bob.txt", b"just for bob"), Audience::User("bob".into()), |_| {}).await;
    let private = format!("/files/{}", sent.expect("sent").info.file);
    assert_eq!(get(web, &private, Some(&bob_token)).await.body, b"just for bob");
    assert_eq!(get(web, &private, Some(&alice_token)).await.status, 200);
    assert_eq!(get(web, &private, Some(&carol_token)).await.status, 403);
    assert_eq!(get(web, "/files/..%2F..%2Fparley.db", Some(&bob_token)).await.status, 404);
    server.shutdown().await;
}

/// A PNG that only announces its size: the signature and an IHDR chunk (8-bit RGBA),
/// then an empty IDAT and IEND. A decoder that believed it would allocate
/// width × height × 4 bytes.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).expect("short").to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    // A zlib stream of a few zero bytes: far less than the image needs.
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn encoded(image: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).expect("encodes");
    out
}

/// A smooth picture of `width` × `height`, as a camera's would compress.
fn picture(width: u32, height: u32) -> image::DynamicImage {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, ((x + y) % 256) as u8])
    });
    image::DynamicImage::ImageRgb8(image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thumbnails_are_small_and_hostile_images_are_refused_without_harm() {
    let (server, web) = web_server().await;
    let dir = Dir::new("thumbs");
    let (alice, token) = account_with_token(server.native, "alice").await;
    let thumb = |id: &str| format!("/files/{id}/thumbnail");

    let png =
        share(&alice, &dir.file("wide.png", &encoded(&picture(800, 600), image::ImageFormat::Png)), "lobby").await;
    let got = get(web, &thumb(&png), Some(&token)).await;
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.header("content-type"), Some("image/png"));
    let small = image::load_from_memory(&got.body).expect("a PNG");
    assert_eq!((small.width(), small.height()), (320, 240), "at most 320 on the long side, in proportion");
    // The native request gives the same picture, from the cache.
    assert_eq!(alice.thumbnail(&png).await.expect("a data frame"), got.body);

    // A 4000 × 3000 JPEG, as a phone takes them.
    let photo = encoded(&picture(4000, 3000), image::ImageFormat::Jpeg);
    let jpeg = share(&alice, &dir.file("photo.jpg", &photo), "lobby").await;
    let started = Instant::now();
    let got = get(web, &thumb(&jpeg), Some(&token)).await;
    let took = started.elapsed();
    assert_eq!(got.status, 200);
    let small = image::load_from_memory(&got.body).expect("a PNG");
    assert_eq!((small.width(), small.height()), (320, 240));
    let started = Instant::now();
    assert_eq!(get(web, &thumb(&jpeg), Some(&token)).await.status, 200);
    eprintln!(
        "thumbnail of a 4000x3000 JPEG ({} KiB): {took:?} made, {:?} cached",
        photo.len() / 1024,
        started.elapsed()
    );

    // Hostile or broken images: refused, each quickly.
    let huge = share(&alice, &dir.file("huge.png", &png_header_only(100_000, 100_000)), "lobby").await;
    let bomb = share(&alice, &dir.file("bomb.png", &png_header_only(8000, 8000)), "lobby").await;
    let mut cut = photo.clone();
    cut.truncate(photo.len() / 3);
    let truncated = share(&alice, &dir.file("cut.jpg", &cut), "lobby").await;
    let mut cut_png = encoded(&picture(800, 600), image::ImageFormat::Png);
    cut_png.truncate(cut_png.len() / 2);
    let truncated_png = share(&alice, &dir.file("cut.png", &cut_png), "lobby").await;
    let liar = share(&alice, &dir.file("fake.png", b"<html>not a picture</html>"), "lobby").await;
    let hostile = [
        ("huge", &huge),
        ("bomb", &bomb),
        ("truncated JPEG", &truncated),
        ("truncated PNG", &truncated_png),
        ("not an image", &liar),
    ];
    for (name, id) in hostile {
        let started = Instant::now();
        let got = get(web, &thumb(id), Some(&token)).await;
        let body = String::from_utf8_lossy(&got.body).to_lowercase();
        assert!(matches!(got.status, 415 | 422), "{name}: {} {body}", got.status);
        assert!(started.elapsed() < Duration::from_secs(5), "{name} took {:?}", started.elapsed());
        if name == "huge" || name == "bomb" {
            // Refused by the decoder's limits before it allocates, not by the missing data.
            assert!(body.contains("limit"), "{name}: {body}");
        }
    }
    let text = share(&alice, &dir.file("notes.txt", b"words"), "lobby").await;
    assert_eq!(get(web, &thumb(&text), Some(&token)).await.status, 415);
    match alice.thumbnail(&bomb).await {
        Err(parley_client::Error::Refused { code, .. }) => assert_eq!(code, ErrorCode::NotAnImage),
        other => panic!("a bomb previewed: {other:?}"),
    }
    // Many hostile requests at once do not stop the server from serving the rest.
    let storm: Vec<_> = (0..8)
        .map(|_| {
            let (token, path) = (token.clone(), thumb(&bomb));
            tokio::spawn(async move { get(web, &path, Some(&token)).await.status })
        })
        .collect();
    for request in storm {
        assert_eq!(request.await.expect("answered"), 422);
    }
    assert_eq!(get(web, &thumb(&png), Some(&token)).await.status, 200);

    // Everyone in a room asks for a new image's preview at the moment it is shared:
    // each is answered with the same picture, made once at a time.
    for round in 0..4u32 {
        let fresh = encoded(&picture(900 + round, 700), image::ImageFormat::Png);
        let id = share(&alice, &dir.file(&format!("fresh{round}.png"), &fresh), "lobby").await;
        let rush: Vec<_> = (0..8)
            .map(|_| {
                let (token, path) = (token.clone(), thumb(&id));
                tokio::spawn(async move {
                    let got = get(web, &path, Some(&token)).await;
                    (got.status, got.body)
                })
            })
            .collect();
        let mut bodies = Vec::new();
        for request in rush {
            let (status, body) = request.await.expect("answered");
            assert_eq!(status, 200, "round {round}: {}", String::from_utf8_lossy(&body));
            bodies.push(body);
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "round {round}: one picture for all");
    }
    alice.ping().await.expect("the chat goes on");
    server.shutdown().await;
}
