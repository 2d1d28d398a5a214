//! Images that fit the model: plots are the largest thing a model receives, and vision models
//! scale anything past about 1568 px down anyway. An image over the pixel limit or the byte
//! budget is downscaled (Lanczos3) and re-encoded as PNG and as JPEG, and the smaller is sent
//! (line plots favour PNG, photos and dense scatter plots JPEG; PNG wins ties, see
//! `smaller_encoding`). JPEG has no alpha: transparent pixels are laid on white first, as a
//! viewer shows them. The caller keeps the original to save and link, so nothing is lost.
//!
//! Also the budget a reply's images share ([`IMAGE_BUDGET_FACTOR`], [`image_fit_limits`]), and
//! the fitting of the two things a tool sends as images: an output item ([`fit_image`]) and an
//! image file ([`FileFit`]).

use std::io::Cursor;
use std::sync::Arc;

use base64::Engine;
use image::codecs::png::{CompressionType, FilterType as PngFilterType, PngEncoder};
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView};

use super::model::{OriginalImage, OutputItem};

/// JPEG quality used when JPEG is tried.
const JPEG_QUALITY: u8 = 85;
/// Smallest longest side the byte budget may push an image down to.
const MIN_PX: u32 = 64;

/// What an image must fit.
#[derive(Debug, Clone, Copy)]
pub struct FitLimits {
    /// Longest side, in pixels.
    pub max_px: u32,
    /// Size of the encoded image, in bytes (before base64).
    pub max_bytes: usize,
}

/// An image made to fit.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub mime_type: &'static str,
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// The pixel size of an encoded image, if it decodes.
pub fn dimensions(raw: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(raw))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// Fits `raw` to `limits`: `Ok(None)` if it already fits (it is sent as is).
pub fn fit(raw: &[u8], limits: FitLimits) -> Result<Option<Fitted>, image::ImageError> {
    if let Some((w, h)) = dimensions(raw)
        && w.max(h) <= limits.max_px
        && raw.len() <= limits.max_bytes
    {
        return Ok(None);
    }
    let img = image::load_from_memory(raw)?;
    let (w, h) = img.dimensions();
    let mut side = limits.max_px.min(w.max(h));
    loop {
        let scaled = if w.max(h) > side {
            img.resize(side, side, FilterType::Lanczos3)
        } else {
            img.clone()
        };
        let best = smaller_encoding(&scaled)?;
        if best.bytes.len() <= limits.max_bytes || side <= MIN_PX {
            return Ok(Some(best));
        }
        side = (side * 3 / 4).max(MIN_PX);
    }
}

/// PNG or JPEG, whichever is smaller for this picture (PNG on a tie: lossless). A line plot's
/// flat colours compress far better as PNG; photos and dense scatter plots as JPEG.
fn smaller_encoding(img: &DynamicImage) -> Result<Fitted, image::ImageError> {
    let (width, height) = img.dimensions();
    // Best compression with adaptive filters: a downscaled plot's anti-aliased edges make
    // the default (fast) PNG up to twice as large, which would hand line plots to JPEG.
    let mut png = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut png, CompressionType::Best, PngFilterType::Adaptive);
    img.write_with_encoder(encoder)?;
    let mut jpeg = Vec::new();
    let rgb = DynamicImage::ImageRgb8(on_white(img));
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY);
    rgb.write_with_encoder(encoder)?;
    let (mime_type, bytes) = if jpeg.len() < png.len() {
        ("image/jpeg", jpeg)
    } else {
        ("image/png", png)
    };
    Ok(Fitted {
        mime_type,
        bytes,
        width,
        height,
    })
}

/// The image as RGB with its transparent pixels composited onto white (dropping alpha would
/// show them black: `savefig(transparent=True)` plots are mostly transparent).
fn on_white(img: &DynamicImage) -> image::RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let image::Rgba([r, g, b, a]) = *rgba.get_pixel(x, y);
        let over = |c: u8| {
            let (c, a) = (u16::from(c), u16::from(a));
            // c*a + 255*(255-a), rounded, over 255: at most 255, so the cast is exact.
            ((c * a + 255 * (255 - a) + 127) / 255) as u8
        };
        image::Rgb([over(r), over(g), over(b)])
    })
}

/// Images get their own budget, this many times the text cap: they are not repeated in
/// `structuredContent`, and a plot is worth more than its size in text. With the default cap a
/// full reply (text twice, images once) stays near 800 KB, under the 1 MiB the Python SDK takes
/// in one SSE event.
pub(crate) const IMAGE_BUDGET_FACTOR: usize = 4;

/// The image budget, in bytes of base64, that a text cap of `max_output_bytes` gives a reply.
pub(crate) fn image_budget(max_output_bytes: usize) -> usize {
    max_output_bytes.saturating_mul(IMAGE_BUDGET_FACTOR)
}

/// What every image a tool returns is fitted to: `max_px` on its longest side, and half of the
/// image budget that `max_output_bytes` gives (in encoded bytes: base64 adds a third), so two
/// full-size plots still fit one reply.
pub(crate) fn image_fit_limits(max_output_bytes: usize, max_px: u32) -> FitLimits {
    let image_budget = image_budget(max_output_bytes);
    FitLimits {
        max_px,
        max_bytes: image_budget / 2 * 3 / 4,
    }
}

/// Fits an image item to `limits` (other items pass through). An image that does not decode
/// is sent as it came.
pub(crate) fn fit_image(item: OutputItem, limits: FitLimits) -> OutputItem {
    let OutputItem::Image {
        mime_type,
        data,
        display_id,
        ..
    } = &item
    else {
        return item;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(raw) = b64.decode(data) else {
        return item;
    };
    match run_blocking(|| fit(&raw, limits)) {
        Ok(Some(fitted)) => {
            let (width, height) = dimensions(&raw).unwrap_or_default();
            let data = b64.encode(&fitted.bytes);
            OutputItem::Image {
                mime_type: fitted.mime_type.into(),
                bytes: data.len(),
                sent_bytes: fitted.bytes.len(),
                width: Some(fitted.width),
                height: Some(fitted.height),
                original: Some(OriginalImage::unsaved(
                    mime_type,
                    (width, height),
                    raw.len(),
                )),
                data,
                original_data: Some(Arc::new(raw)),
                display_id: display_id.clone(),
            }
        }
        Ok(None) => {
            let size = dimensions(&raw);
            match item {
                OutputItem::Image {
                    mime_type,
                    bytes,
                    data,
                    display_id,
                    ..
                } => OutputItem::Image {
                    original: size.map(|size| OriginalImage::unsaved(&mime_type, size, raw.len())),
                    mime_type,
                    bytes,
                    sent_bytes: raw.len(),
                    width: size.map(|s| s.0),
                    height: size.map(|s| s.1),
                    data,
                    original_data: None,
                    display_id,
                },
                other => other,
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "image did not decode; sent as it came");
            item
        }
    }
}

/// Runs CPU-heavy work on a runtime worker without stalling the others' tasks (a multi-thread
/// runtime moves them away); elsewhere it just runs it.
fn run_blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// What fitting an image file to the model gave.
pub(crate) enum FileFit {
    /// It already fits: sent as is, at this pixel size.
    AsIs {
        width: u32,
        height: u32,
    },
    Downscaled(Fitted),
    /// It does not decode: linked, never sent unfitted.
    Undecodable(String),
}

impl FileFit {
    /// Fits the image file `bytes` to `limits`.
    pub(crate) fn of(bytes: &[u8], limits: FitLimits) -> FileFit {
        match fit(bytes, limits) {
            Ok(Some(f)) => FileFit::Downscaled(f),
            // `fit` reads only the header of an image that fits; decode it whole before
            // sending it, so a broken file is linked rather than sent.
            Ok(None) => match image::load_from_memory(bytes) {
                Ok(img) => FileFit::AsIs {
                    width: img.width(),
                    height: img.height(),
                },
                Err(e) => FileFit::Undecodable(e.to_string()),
            },
            Err(e) => FileFit::Undecodable(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage};

    fn png(img: RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_small_image_is_left_alone() {
        let raw = png(RgbImage::from_pixel(100, 50, Rgb([255, 255, 255])));
        let limits = FitLimits {
            max_px: 1568,
            max_bytes: 1 << 20,
        };
        assert!(fit(&raw, limits).unwrap().is_none());
    }

    #[test]
    fn a_large_line_plot_is_downscaled_as_png() {
        // White with a few thin lines: PNG compresses it far better than JPEG.
        let mut img = RgbImage::from_pixel(4000, 2000, Rgb([255, 255, 255]));
        for x in 0..4000 {
            img.put_pixel(x, 1000 + (x % 7), Rgb([0, 0, 255]));
        }
        let limits = FitLimits {
            max_px: 1568,
            max_bytes: 1 << 20,
        };
        let fitted = fit(&png(img), limits).unwrap().unwrap();
        assert_eq!((fitted.width, fitted.height), (1568, 784));
        assert_eq!(fitted.mime_type, "image/png");
        assert_eq!(dimensions(&fitted.bytes), Some((1568, 784)));
    }

    #[test]
    fn noise_is_sent_as_jpeg_within_the_byte_budget() {
        let mut seed = 1u32;
        let img = RgbImage::from_fn(1200, 900, |_, _| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let b = seed.to_le_bytes();
            Rgb([b[1], b[2], b[3]])
        });
        let limits = FitLimits {
            max_px: 1568,
            max_bytes: 200_000,
        };
        let fitted = fit(&png(img), limits).unwrap().unwrap();
        assert_eq!(fitted.mime_type, "image/jpeg");
        assert!(fitted.bytes.len() <= 200_000, "{}", fitted.bytes.len());
    }

    /// The rule: whichever is smaller. Mild noise over a gradient gives a JPEG
    /// smaller than the PNG but not half of it, where the old rule (JPEG only at half the
    /// size) sent the larger PNG.
    #[test]
    fn jpeg_is_chosen_whenever_it_is_smaller() {
        let mut seed = 7u32;
        let img = RgbImage::from_fn(400, 300, |x, _| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let n = (seed >> 24) as u8 % 6;
            let v = (x / 2) as u8;
            Rgb([v.saturating_add(n), v, v])
        });
        let dynamic = DynamicImage::ImageRgb8(img.clone());
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY);
        dynamic.write_with_encoder(encoder).unwrap();
        let raw = png(img);
        assert!(
            jpeg.len() < raw.len(),
            "set-up: {} vs {}",
            jpeg.len(),
            raw.len()
        );
        let best = smaller_encoding(&dynamic).unwrap();
        let other = if best.mime_type == "image/jpeg" {
            raw.len()
        } else {
            jpeg.len()
        };
        assert!(best.bytes.len() <= other);
        assert_eq!(
            best.mime_type,
            "image/jpeg",
            "jpeg {} png {}",
            jpeg.len(),
            raw.len()
        );
    }

    /// A transparent plot sent as JPEG shows white where it was transparent, not black.
    #[test]
    fn transparent_pixels_become_white_in_a_jpeg() {
        let img = image::RgbaImage::from_fn(64, 64, |x, _| {
            if x < 32 {
                image::Rgba([0, 0, 0, 0])
            } else {
                image::Rgba([0, 0, 255, 255])
            }
        });
        let flat = on_white(&DynamicImage::ImageRgba8(img.clone()));
        assert_eq!(flat.get_pixel(0, 0), &Rgb([255, 255, 255]));
        assert_eq!(flat.get_pixel(63, 0), &Rgb([0, 0, 255]));
        let half = on_white(&DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            1,
            1,
            image::Rgba([0, 0, 0, 128]),
        )));
        assert_eq!(half.get_pixel(0, 0), &Rgb([127, 127, 127]));
        // Through the encoder: decode the JPEG and look at a transparent pixel.
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY);
        DynamicImage::ImageRgb8(flat)
            .write_with_encoder(encoder)
            .unwrap();
        let back = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert!(
            back.get_pixel(4, 4).0.iter().all(|c| *c > 240),
            "{:?}",
            back.get_pixel(4, 4)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let limits = FitLimits {
            max_px: 10,
            max_bytes: 10,
        };
        assert!(fit(b"not an image at all", limits).is_err());
    }
}
