//! The visitor pass's QR code as inline SVG (the `qrcode` crate), so the
//! printable pass needs no image file and no network.

use anyhow::{anyhow, Result};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// An `<svg>` element drawing `payload` (without the XML prolog, for inlining).
pub fn svg(payload: &str) -> Result<String> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
        .map_err(|e| anyhow!("cannot make a QR code: {e}"))?;
    let xml = code
        .render::<svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    let start = xml
        .find("<svg")
        .ok_or_else(|| anyhow!("QR renderer produced no <svg> element"))?;
    Ok(xml[start..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_inline_svg_of_the_payload() {
        let s = svg("GH1;site=qingbo;pass=V12;pin=482913").unwrap();
        assert!(s.starts_with("<svg"), "{}", &s[..40]);
        assert!(s.ends_with("</svg>"));
        assert!(s.contains("<path"), "dark modules are drawn");
        // A longer payload needs more modules: a different drawing.
        assert_ne!(s, svg("GH1;site=qingbo;pass=V13;pin=482914;x").unwrap());
    }
}
