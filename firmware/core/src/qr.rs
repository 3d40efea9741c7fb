//! A QR code drawn with Unicode half blocks on the serial console, so an installer's phone can
//! read the meter's public key off the terminal. No heap: the code is built in two buffers on
//! the stack (`qrcodegen-no-heap`).
//!
//! Each character is one module wide and two tall (`▀`, `▄`, `█`, space). Terminals are mostly
//! light text on a dark background, so the code's light modules are drawn and its dark ones
//! left blank, as `qrencode -t UTF8` does; four light modules of quiet zone surround it.

use core::fmt;

use qrcodegen_no_heap::{QrCode, QrCodeEcc, Version};

/// Modules of light margin around the code, as the QR standard asks.
pub const QUIET_ZONE: i32 = 4;
/// Large enough for a base58 key (44 bytes) at medium error correction (version 4 holds 62).
pub const MAX_VERSION: Version = Version::new(4);
const BUFFER_LEN: usize = MAX_VERSION.buffer_len();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QrError {
    /// More text than a version 4 code holds (62 bytes).
    TooLong,
    /// The console refused the output.
    Output,
}

impl From<fmt::Error> for QrError {
    fn from(_: fmt::Error) -> Self {
        Self::Output
    }
}

/// Draws `text` as a QR code on `out`, one line per two rows of modules, each ending in `\n`.
pub fn write_qr(text: &str, out: &mut impl fmt::Write) -> Result<(), QrError> {
    let mut temp = [0u8; BUFFER_LEN];
    let mut code = [0u8; BUFFER_LEN];
    let qr = QrCode::encode_text(
        text,
        &mut temp,
        &mut code,
        QrCodeEcc::Medium,
        Version::MIN,
        MAX_VERSION,
        None,
        true,
    )
    .map_err(|_| QrError::TooLong)?;
    let size = qr.size();
    // Light inside the quiet zone, except where the code has a dark module; nothing past it.
    let light = |x: i32, y: i32| {
        let outer = size + QUIET_ZONE;
        (-QUIET_ZONE..outer).contains(&x)
            && (-QUIET_ZONE..outer).contains(&y)
            && !qr.get_module(x, y)
    };
    let mut y = -QUIET_ZONE;
    while y < size + QUIET_ZONE {
        for x in -QUIET_ZONE..size + QUIET_ZONE {
            out.write_char(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            })?;
        }
        out.write_char('\n')?;
        y += 2;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::{MeterKey, BASE58_MAX_LEN};

    /// Pixels per module when the printed code is turned back into a picture.
    const SCALE: usize = 4;

    /// Reads the printed code the way a phone's camera would: a greyscale picture of the
    /// terminal (light glyph halves white, the rest black), searched for a code and decoded.
    fn scan(printed: &str) -> String {
        let lines: Vec<Vec<char>> = printed.lines().map(|l| l.chars().collect()).collect();
        let width = lines.iter().map(Vec::len).max().unwrap() * SCALE;
        let height = lines.len() * 2 * SCALE;
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
            let glyph = lines[y / (2 * SCALE)].get(x / SCALE).copied().unwrap_or(' ');
            let upper = (y / SCALE).is_multiple_of(2);
            let lit = match glyph {
                '█' => true,
                '▀' => upper,
                '▄' => !upper,
                ' ' => false,
                other => panic!("unexpected glyph {other:?}"),
            };
            if lit {
                255
            } else {
                0
            }
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "one code on the console");
        grids[0].decode().expect("the printed code decodes").1
    }

    #[test]
    fn the_printed_code_of_a_meter_key_scans_back_to_the_key() {
        for seed in [[0u8; 32], [0x5A; 32], [0xFF; 32]] {
            let key = MeterKey::from_seed(&seed);
            let mut base58 = [0u8; BASE58_MAX_LEN];
            let text = key.public_key_base58(&mut base58);
            let mut printed = String::new();
            write_qr(text, &mut printed).unwrap();
            assert_eq!(scan(&printed), text);
            // Version 3 or 4 at medium correction: 29 or 33 modules and the quiet zone.
            let width = printed.lines().next().unwrap().chars().count();
            assert!(width == 37 || width == 41, "{width} columns");
        }
    }

    #[test]
    fn text_longer_than_a_version_4_code_is_refused() {
        let mut printed = String::new();
        assert_eq!(write_qr(&"k".repeat(63), &mut printed), Err(QrError::TooLong));
        assert!(printed.is_empty());
    }
}
