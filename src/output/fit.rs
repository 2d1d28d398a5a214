//! Images that fit the model: plots are the largest thing a model receives, and vision models
//! scale anything past about 1568 px down anyway. An image over the pixel limit or the byte
//! budget is downscaled (Lanczos3) and re-encoded as PNG and as JPEG, and the smaller is sent
//! (line plots favour PNG, photos and dense scatter plots JPEG; PNG wins ties, see
//! `smaller_encoding`). The caller keeps the original
//! to save and link, so nothing is lost.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, ImageFormat};

/// JPEG quality used when JPEG is tried.
const JPEG_QUALITY: u8 = 85;
/// JPEG is chosen only when it is this many times smaller than the PNG.
const JPEG_ADVANTAGE: usize = 2;
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

/// PNG, unless JPEG is less than half its size: lossless keeps a plot's lines and text crisp,
/// so JPEG's artifacts are only worth it when they buy a lot (photos, dense scatter plots).
fn smaller_encoding(img: &DynamicImage) -> Result<Fitted, image::ImageError> {
    let (width, height) = img.dimensions();
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    let mut jpeg = Vec::new();
    let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY);
    rgb.write_with_encoder(encoder)?;
    let (mime_type, bytes) = if jpeg.len().saturating_mul(JPEG_ADVANTAGE) < png.len() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

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

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let limits = FitLimits {
            max_px: 10,
            max_bytes: 10,
        };
        assert!(fit(b"not an image at all", limits).is_err());
    }
}
