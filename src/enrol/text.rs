//! Decoding spreadsheet exports: UTF-8, UTF-8 with a BOM (Excel's "CSV UTF-8")
//! and GB18030 (what Excel on a Chinese Windows saves as plain "CSV").

use std::borrow::Cow;

use encoding_rs::GB18030;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceEncoding {
    Utf8,
    Utf8Bom,
    Gb18030,
}

impl SourceEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceEncoding::Utf8 => "UTF-8",
            SourceEncoding::Utf8Bom => "UTF-8 with BOM",
            SourceEncoding::Gb18030 => "GB18030",
        }
    }
}

/// Decodes the bytes of a text file. Valid UTF-8 wins (GBK bytes are almost
/// never valid UTF-8, so the guess is safe); otherwise GB18030, strictly: a
/// byte sequence that is neither is an error, never a replacement character
/// silently stored in someone's name.
pub fn decode(bytes: &[u8]) -> Result<(Cow<'_, str>, SourceEncoding), String> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(
            "the file is UTF-16 (Excel's \"Unicode text\"); save it as \"CSV UTF-8\" or \"CSV\" instead"
                .into(),
        );
    }
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return std::str::from_utf8(rest)
            .map(|s| (Cow::Borrowed(s), SourceEncoding::Utf8Bom))
            .map_err(|e| {
                format!(
                    "the file starts with a UTF-8 BOM but byte {} is not UTF-8",
                    e.valid_up_to() + 3
                )
            });
    }
    let utf8_error = match std::str::from_utf8(bytes) {
        Ok(s) => return Ok((Cow::Borrowed(s), SourceEncoding::Utf8)),
        Err(e) => e,
    };
    match GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(text) => Ok((text, SourceEncoding::Gb18030)),
        None => Err(format!(
            "the file is neither UTF-8 (byte {} is invalid) nor GB18030; save it as \"CSV UTF-8\"",
            utf8_error.valid_up_to()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_utf8_bom_and_gb18030() {
        let text = "姓名,张三\n";
        assert_eq!(
            decode(text.as_bytes()).unwrap(),
            (Cow::Borrowed(text), SourceEncoding::Utf8)
        );
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode(&bom).unwrap().1, SourceEncoding::Utf8Bom);
        assert_eq!(decode(&bom).unwrap().0, text);
        let (gb, _, _) = GB18030.encode(text);
        let (decoded, enc) = decode(&gb).unwrap();
        assert_eq!(enc, SourceEncoding::Gb18030);
        assert_eq!(decoded, text);
    }

    #[test]
    fn rejects_utf16_and_undecodable_bytes() {
        assert!(decode(&[0xFF, 0xFE, b'a', 0])
            .unwrap_err()
            .contains("UTF-16"));
        assert!(decode(&[b'a', 0xFF, 0xFF, b'b']).is_err());
    }
}
