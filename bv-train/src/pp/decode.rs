//! Image decoding as `tf.io.decode_image(channels=C, expand_animations=False)`.
//!
//! JPEG goes through libjpeg-turbo (MozJPEG's build of it) with TensorFlow's settings: the
//! `JDCT_IFAST` integer IDCT and fancy upsampling, so pixels equal TensorFlow's bit for bit.
//! The fused crop uses `jpeg_crop_scanline`/`jpeg_skip_scanlines` exactly as TensorFlow's
//! `DecodeAndCropJpeg`. PNG goes through the `png` crate (lossless, so exact); 16-bit samples
//! keep their high byte, alpha is dropped, grayscale is replicated to three channels.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mozjpeg_sys as jpeg;

use crate::data::Array;

/// Which inverse DCT to use for JPEG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dct {
    /// `INTEGER_FAST` (JDCT_IFAST): TensorFlow's default.
    Fast,
    /// `INTEGER_ACCURATE` (JDCT_ISLOW): big_vision's `decode(precise=True)`.
    Accurate,
}

/// A crop window `[y, x, h, w]` in source pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Top row.
    pub y: usize,
    /// Left column.
    pub x: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

/// The image format, from its first bytes.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else {
        None
    }
}

/// Decodes a JPEG or PNG into (H, W, `channels`) uint8; `channels` is 1 or 3.
pub fn decode_image(bytes: &[u8], channels: usize, dct: Dct) -> Result<Array<u8>, String> {
    if channels != 1 && channels != 3 {
        return Err(format!("channels={channels}; use 1 or 3"));
    }
    match sniff(bytes) {
        Some("jpeg") => decode_jpeg(bytes, channels, dct, None),
        Some("png") => decode_png(bytes, channels),
        _ => Err(format!(
            "unknown image format (first bytes {:02x?}); JPEG and PNG are supported",
            &bytes[..bytes.len().min(8)]
        )),
    }
}

/// The (height, width) of an image, from its header only.
pub fn image_size(bytes: &[u8]) -> Result<(usize, usize), String> {
    match sniff(bytes) {
        Some("jpeg") => jpeg_call(bytes, |c| unsafe {
            jpeg::jpeg_read_header(c, 1);
            Ok((c.image_height as usize, c.image_width as usize))
        }),
        Some("png") => {
            let r = png::Decoder::new(std::io::Cursor::new(bytes))
                .read_info()
                .map_err(|e| format!("png: {e}"))?;
            let i = r.info();
            Ok((i.height as usize, i.width as usize))
        }
        _ => Err("unknown image format; JPEG and PNG are supported".into()),
    }
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg::jpeg_common_struct) {
    let err = cinfo.err;
    let mut buf = [0u8; 80];
    if let Some(fmt) = (*err).format_message {
        // libjpeg writes the message into the buffer; the binding types it as a shared ref.
        type Fmt = unsafe extern "C-unwind" fn(&mut jpeg::jpeg_common_struct, *mut u8);
        let fmt: Fmt = std::mem::transmute(fmt);
        fmt(cinfo, buf.as_mut_ptr());
    }
    let msg = std::ffi::CStr::from_bytes_until_nul(&buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "libjpeg error".into());
    // Unwinds to `jpeg_call` (which destroys the decoder) without running the panic hook.
    std::panic::resume_unwind(Box::new(msg));
}

unsafe extern "C-unwind" fn silent(_: &mut jpeg::jpeg_common_struct) {}

/// Runs `f` on a fresh decompressor reading `bytes`; libjpeg errors become `Err`.
fn jpeg_call<T>(
    bytes: &[u8],
    f: impl FnOnce(&mut jpeg::jpeg_decompress_struct) -> Result<T, String>,
) -> Result<T, String> {
    // SAFETY: the structs are plain C data initialized by libjpeg's constructors; `bytes`
    // outlives the decompressor, which is destroyed on every path.
    unsafe {
        let mut err: jpeg::jpeg_error_mgr = std::mem::zeroed();
        let mut cinfo: jpeg::jpeg_decompress_struct = std::mem::zeroed();
        let e = jpeg::jpeg_std_error(&mut err);
        e.error_exit = Some(error_exit);
        e.output_message = Some(silent);
        cinfo.common.err = e;
        jpeg::jpeg_CreateDecompress(
            &mut cinfo,
            jpeg::JPEG_LIB_VERSION,
            std::mem::size_of::<jpeg::jpeg_decompress_struct>(),
        );
        let out = catch_unwind(AssertUnwindSafe(|| {
            jpeg::jpeg_mem_src(&mut cinfo, bytes.as_ptr(), bytes.len() as _);
            f(&mut cinfo)
        }));
        jpeg::jpeg_destroy_decompress(&mut cinfo);
        match out {
            Ok(r) => r,
            Err(p) => Err(match p.downcast::<String>() {
                Ok(s) => format!("jpeg: {s}"),
                Err(p) => std::panic::resume_unwind(p),
            }),
        }
    }
}

/// Decodes a JPEG, optionally only the crop `window` (TensorFlow's `DecodeAndCropJpeg`).
pub fn decode_jpeg(
    bytes: &[u8],
    channels: usize,
    dct: Dct,
    window: Option<Window>,
) -> Result<Array<u8>, String> {
    jpeg_call(bytes, |c| unsafe {
        jpeg::jpeg_read_header(c, 1);
        if c.num_components != 1 && c.num_components != 3 {
            return Err(format!(
                "{} color components (CMYK?) are not supported",
                c.num_components
            ));
        }
        c.out_color_space = if channels == 1 {
            jpeg::J_COLOR_SPACE::JCS_GRAYSCALE
        } else {
            jpeg::J_COLOR_SPACE::JCS_RGB
        };
        c.dct_method = match dct {
            Dct::Fast => jpeg::J_DCT_METHOD::JDCT_IFAST,
            Dct::Accurate => jpeg::J_DCT_METHOD::JDCT_ISLOW,
        };
        c.do_fancy_upsampling = 1;
        jpeg::jpeg_start_decompress(c);
        let (ih, iw) = (c.output_height as usize, c.output_width as usize);
        let win = window.unwrap_or(Window {
            y: 0,
            x: 0,
            h: ih,
            w: iw,
        });
        if win.h == 0 || win.w == 0 || win.y + win.h > ih || win.x + win.w > iw {
            jpeg::jpeg_abort_decompress(c);
            return Err(format!(
                "crop window {win:?} does not fit the {ih}x{iw} image"
            ));
        }
        let mut col0 = 0usize;
        if window.is_some() {
            let mut x = win.x as jpeg::JDIMENSION;
            let mut w = win.w as jpeg::JDIMENSION;
            jpeg::jpeg_crop_scanline(c, &mut x, &mut w);
            col0 = win.x - x as usize;
            if win.y > 0 && jpeg::jpeg_skip_scanlines(c, win.y as _) as usize != win.y {
                jpeg::jpeg_abort_decompress(c);
                return Err("jpeg: could not skip to the crop window".into());
            }
        }
        let stride = c.output_width as usize * channels;
        let mut row = vec![0u8; stride];
        let mut out = Vec::with_capacity(win.h * win.w * channels);
        for _ in 0..win.h {
            let mut p = row.as_mut_ptr();
            if jpeg::jpeg_read_scanlines(c, &mut p, 1) != 1 {
                jpeg::jpeg_abort_decompress(c);
                return Err("jpeg: premature end of data".into());
            }
            out.extend_from_slice(&row[col0 * channels..(col0 + win.w) * channels]);
        }
        // TensorFlow stops here too (`jpeg_abort` after the rows it needs).
        jpeg::jpeg_abort_decompress(c);
        Ok(Array::new(vec![win.h, win.w, channels], out))
    })
}

/// Decodes a PNG into (H, W, `channels`).
pub fn decode_png(bytes: &[u8], channels: usize) -> Result<Array<u8>, String> {
    let mut d = png::Decoder::new(std::io::Cursor::new(bytes));
    d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = d.read_info().map_err(|e| format!("png: {e}"))?;
    let size = r
        .output_buffer_size()
        .ok_or_else(|| "png: image too large".to_string())?;
    let mut buf = vec![0u8; size];
    let info = r.next_frame(&mut buf).map_err(|e| format!("png: {e}"))?;
    buf.truncate(info.buffer_size());
    let (h, w) = (info.height as usize, info.width as usize);
    let src_c = info.color_type.samples();
    let out: Vec<u8> = match (src_c, channels) {
        (1 | 2, 1) => buf.chunks_exact(src_c).map(|p| p[0]).collect(),
        (1 | 2, 3) => buf
            .chunks_exact(src_c)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        (3, 3) => buf,
        (4, 3) => buf
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        (3 | 4, 1) => buf
            .chunks_exact(src_c)
            .map(|p| {
                // libpng's png_set_rgb_to_gray default weights (ITU-R 709), 15-bit fixed point.
                let y = 6968 * p[0] as u32 + 23434 * p[1] as u32 + 2366 * p[2] as u32;
                ((y + 16384) >> 15) as u8
            })
            .collect(),
        (s, c) => return Err(format!("png: cannot convert {s} samples to {c} channels")),
    };
    Ok(Array::new(vec![h, w, channels], out))
}
