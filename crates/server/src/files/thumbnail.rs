//! Thumbnails of shared images, for previews: at most [`SIDE`] pixels on the long
//! side, as PNG, made once and cached beside the file (`ab/cdef….thumb.png`).
//!
//! An image is hostile until decoded: a few kilobytes can announce a picture of
//! 100,000 × 100,000 pixels, or hold data that makes a decoder spin. So only PNG, JPEG,
//! GIF and WebP are decoded (by their content, whatever the share's media type says),
//! only files up to [`MAX_SOURCE_BYTES`], with the decoders' own limits (each side at
//! most [`MAX_SIDE`] pixels, at most [`MAX_ALLOC`] bytes allocated), on the blocking
//! pool, [`AT_ONCE`] at a time server-wide, and a request waits at most [`TIME_LIMIT`].
//! A decode that overruns keeps its slot until it ends, so however many requests ask,
//! no more than [`AT_ONCE`] threads and [`AT_ONCE`] × [`MAX_ALLOC`] bytes go to
//! thumbnails.

use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use image::{DynamicImage, ImageFormat, ImageReader};
use tokio::sync::Semaphore;

use super::{FileStore, Share};

/// The longest side of a thumbnail, in pixels.
pub(crate) const SIDE: u32 = 320;

/// The longest side of an image decoded, in pixels.
pub(crate) const MAX_SIDE: u32 = 8192;

/// The most bytes a decoder may allocate.
pub(crate) const MAX_ALLOC: u64 = 64 * 1024 * 1024;

/// The largest file decoded.
pub(crate) const MAX_SOURCE_BYTES: u64 = 32 * 1024 * 1024;

/// The longest a request waits for a thumbnail to be made.
pub(crate) const TIME_LIMIT: Duration = Duration::from_secs(10);

/// Thumbnails made at once, server-wide.
pub(crate) const AT_ONCE: usize = 2;

/// What a cached thumbnail's name adds to its file's.
pub(crate) const SUFFIX: &str = ".thumb.png";

/// The media types thumbnails are made of.
const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Numbers the thumbnails being written, for their temporary names.
static PARTS: AtomicU64 = AtomicU64::new(0);

static SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(AT_ONCE)));

/// Why there is no thumbnail.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ThumbnailError {
    /// Not a file thumbnails are made of (its type, or its size).
    #[error("{0}")]
    NotAnImage(String),
    /// The image could not be decoded within the limits, or is damaged.
    #[error("the image cannot be previewed: {0}")]
    Undecodable(String),
    /// Making it took longer than the limit.
    #[error("the image took too long to preview")]
    TimedOut,
    /// The disk failed.
    #[error("the preview could not be made: {0}")]
    Io(#[from] std::io::Error),
}

/// Whether a share's media type is one thumbnails are made of.
pub(crate) fn is_image(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    IMAGE_TYPES.contains(&essence.as_str())
}

/// The thumbnail of `share`'s file: the cached one, or one made now.
pub(crate) async fn thumbnail(files: &FileStore, share: &Share) -> Result<Bytes, ThumbnailError> {
    if !is_image(&share.info.media_type) {
        return Err(ThumbnailError::NotAnImage("previews are made of PNG, JPEG, GIF and WebP images only".into()));
    }
    if share.info.size > MAX_SOURCE_BYTES {
        return Err(ThumbnailError::NotAnImage(format!(
            "previews are made of images up to {} only",
            parley_proto::msg::human_size(MAX_SOURCE_BYTES)
        )));
    }
    let source = files.content_path(&share.info.sha256);
    let cache = cached(&source);
    if let Ok(bytes) = tokio::fs::read(&cache).await {
        return Ok(Bytes::from(bytes));
    }
    let made = async {
        // The semaphore is never closed.
        let slot = SLOTS.clone().acquire_owned().await.map_err(|_| ThumbnailError::TimedOut)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            // Made while this request waited for its slot, by another that asked first.
            match std::fs::read(&cache) {
                Ok(bytes) => Ok(Bytes::from(bytes)),
                Err(_) => make(&source, &cache),
            }
        })
        .await
        .map_err(|e| ThumbnailError::Undecodable(format!("the decoder failed: {e}")))?
    };
    match tokio::time::timeout(TIME_LIMIT, made).await {
        Ok(made) => made,
        Err(_) => Err(ThumbnailError::TimedOut),
    }
}

/// Where the thumbnail of the file at `source` is cached.
fn cached(source: &Path) -> PathBuf {
    let mut name = source.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// Decodes `source` within the limits, scales it down and caches it. Blocks.
fn make(source: &Path, cache: &Path) -> Result<Bytes, ThumbnailError> {
    let image = decode(source)?;
    let small = if image.width() <= SIDE && image.height() <= SIDE { image } else { image.thumbnail(SIDE, SIDE) };
    let small = if small.color().has_alpha() {
        DynamicImage::ImageRgba8(small.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(small.to_rgb8())
    };
    let mut png = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| ThumbnailError::Undecodable(e.to_string()))?;
    // A name of its own: two requests may make the same thumbnail at once, and the
    // second must not truncate what the first is about to rename.
    let partial = cache.with_extension(format!("png.{}.part", PARTS.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&partial, &png)?;
    std::fs::rename(&partial, cache)?;
    Ok(Bytes::from(png))
}

/// Decodes an image file, by its content, within the limits.
pub(crate) fn decode(source: &Path) -> Result<DynamicImage, ThumbnailError> {
    let file = std::fs::File::open(source)?;
    let reader = ImageReader::new(BufReader::new(file)).with_guessed_format()?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => {}
        _ => return Err(ThumbnailError::NotAnImage("the file is not a PNG, JPEG, GIF or WebP image".into())),
    }
    if reader.format() == Some(ImageFormat::Jpeg) && !ends_as_jpeg(source)? {
        // The JPEG decoder previews a truncated file as a grey rest; refused instead.
        return Err(ThumbnailError::Undecodable("the JPEG file is truncated".into()));
    }
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    reader.decode().map_err(|e| ThumbnailError::Undecodable(e.to_string()))
}

/// Whether a JPEG file ends with its end-of-image marker (`FF D9`), within its last
/// 64 KiB (padding and small trailers may follow it). Entropy-coded data never holds
/// `FF D9` (a data `FF` is always followed by `00`), so a file cut short lacks it.
fn ends_as_jpeg(source: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 64 * 1024;
    let mut file = std::fs::File::open(source)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL)))?;
    let mut tail = Vec::new();
    file.take(TAIL).read_to_end(&mut tail)?;
    Ok(tail.windows(2).any(|w| w == [0xff, 0xd9]))
}
