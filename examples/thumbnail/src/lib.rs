//! Makes a PNG thumbnail: decodes an image (PNG or JPEG) or generates a test gradient,
//! resizes it with a Lanczos filter to fit within `max` pixels, and encodes it as PNG.
//!
//! It shows a real CPU-bound task using ordinary crates (`image`, `base64`) inside the
//! sandbox.
//!
//! Input, either an image:
//! `{"image_base64": "<PNG or JPEG, base64>", "max": 64}`
//! or, without an image, a deterministic gradient of the given size:
//! `{"width": 640, "height": 480, "max": 64}`
//! (`max` defaults to 64). Output: `{"width": w, "height": h, "png_base64": "..."}`, the
//! thumbnail's size (aspect ratio kept, never enlarged) and its PNG bytes.
//!
//! ```text
//! cargo build --profile guest --target wasm32-wasip2 -p thumbnail
//! wasmq run target/wasm32-wasip2/guest/thumbnail.wasm --input '{"width": 640, "height": 480, "max": 64}'
//! ```

use std::io::Cursor;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, RgbImage};
use serde::{Deserialize, Serialize};
use wasmq_guest::{Context, TaskError};

/// The largest generated test image, per side: bigger requests are bad input.
const MAX_GENERATED_SIDE: u32 = 8192;

#[derive(Deserialize)]
struct Input {
    width: Option<u32>,
    height: Option<u32>,
    image_base64: Option<String>,
    #[serde(default = "default_max")]
    max: u32,
}

fn default_max() -> u32 {
    64
}

#[derive(Serialize)]
struct Output {
    width: u32,
    height: u32,
    png_base64: String,
}

/// A deterministic RGB gradient: red grows to the right, green downwards.
fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let r = (x * 255 / width.max(2).saturating_sub(1).max(1)).min(255) as u8;
        let g = (y * 255 / height.max(2).saturating_sub(1).max(1)).min(255) as u8;
        let b = ((x + y) % 256) as u8;
        image::Rgb([r, g, b])
    })
}

fn source(input: &Input, cx: &Context) -> Result<DynamicImage, TaskError> {
    if let Some(b64) = &input.image_base64 {
        let bytes = BASE64
            .decode(b64.trim())
            .map_err(|e| TaskError::fatal(format!("`image_base64` is not valid base64: {e}")))?;
        let img = image::load_from_memory(&bytes).map_err(|e| {
            TaskError::fatal(format!("`image_base64` is not a PNG or JPEG image: {e}"))
        })?;
        cx.info(format!("decoded a {}x{} image", img.width(), img.height()));
        return Ok(img);
    }
    let (Some(width), Some(height)) = (input.width, input.height) else {
        return Err(TaskError::fatal(
            "give either `image_base64` or both `width` and `height` for a generated image",
        ));
    };
    if width == 0 || height == 0 || width > MAX_GENERATED_SIDE || height > MAX_GENERATED_SIDE {
        return Err(TaskError::fatal(format!(
            "`width` and `height` must be between 1 and {MAX_GENERATED_SIDE}, got {width}x{height}"
        )));
    }
    cx.info(format!("generated a {width}x{height} gradient"));
    Ok(DynamicImage::ImageRgb8(gradient(width, height)))
}

fn run(input: Input, cx: &Context) -> Result<Output, TaskError> {
    if input.max == 0 {
        return Err(TaskError::fatal("`max` must be at least 1"));
    }
    let img = source(&input, cx)?;
    cx.progress(30, Some("loaded"));

    let thumb = if img.width() <= input.max && img.height() <= input.max {
        img
    } else {
        img.resize(input.max, input.max, FilterType::Lanczos3)
    };
    cx.progress(80, Some("resized"));

    let mut png = Vec::new();
    thumb
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| TaskError::fatal(format!("cannot encode the thumbnail as PNG: {e}")))?;

    Ok(Output {
        width: thumb.width(),
        height: thumb.height(),
        png_base64: BASE64.encode(png),
    })
}

wasmq_guest::json_task!(run);
