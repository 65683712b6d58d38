//! Just enough `multipart/form-data` to take a camera's event apart: the XML
//! part and the JPEG parts that follow it.
//!
//! Written here rather than taken from a general parser because cameras bend
//! the format (parts without `Content-Disposition`, bare `\n` line ends) and a
//! whole body is already in memory under the size limit, so a slice-based
//! splitter is both simpler and more forgiving.

/// One part of a multipart body, borrowing from it.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// `name` from `Content-Disposition`, if any.
    pub name: Option<String>,
    /// `filename` from `Content-Disposition`, if any.
    pub filename: Option<String>,
    /// `Content-Type` of the part, lower-cased, if any.
    pub content_type: Option<String>,
    pub body: &'a [u8],
}

/// The `boundary` parameter of a `multipart/…` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Splits `body` at `--boundary` lines. Errors say what is missing.
pub fn parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let Some(mut pos) = find(body, delimiter, 0) else {
        return Err(format!("multipart body has no boundary line --{boundary}"));
    };
    let mut out = Vec::new();
    loop {
        let after = pos + delimiter.len();
        if body[after..].starts_with(b"--") {
            return Ok(out);
        }
        let start = skip_line_end(body, after);
        // The next delimiter starts a line; search from this part's start.
        let Some(next) = find_line_start(body, delimiter, start) else {
            return Err("multipart body ends inside a part (no closing boundary)".into());
        };
        let raw = trim_line_end(&body[start..next]);
        out.push(part(raw)?);
        pos = next;
    }
}

fn part(raw: &[u8]) -> Result<Part<'_>, String> {
    let (head, body) = match find(raw, b"\r\n\r\n", 0) {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => match find(raw, b"\n\n", 0) {
            Some(i) => (&raw[..i], &raw[i + 2..]),
            // A part may have no headers at all: then it starts with a blank line.
            None if raw.starts_with(b"\r\n") => (&raw[..0], &raw[2..]),
            None => return Err("multipart part has no blank line after its headers".into()),
        },
    };
    let head = std::str::from_utf8(head)
        .map_err(|_| "multipart part headers are not UTF-8".to_string())?;
    let mut p = Part {
        name: None,
        filename: None,
        content_type: None,
        body,
    };
    for line in head.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        if key.eq_ignore_ascii_case("content-type") {
            p.content_type = Some(value.trim().to_ascii_lowercase());
        } else if key.eq_ignore_ascii_case("content-disposition") {
            p.name = disposition_param(value, "name");
            p.filename = disposition_param(value, "filename");
        }
    }
    Ok(p)
}

fn disposition_param(value: &str, key: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        i += off;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The next `needle` that begins a line (JPEG bytes may contain it by chance).
fn find_line_start(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let at = find(hay, needle, i)?;
        if at == 0 || hay[at - 1] == b'\n' {
            return Some(at);
        }
        i = at + 1;
    }
}

fn skip_line_end(body: &[u8], at: usize) -> usize {
    // Transport padding after a boundary is allowed before the line end.
    let mut i = at;
    while i < body.len() && (body[i] == b' ' || body[i] == b'\t') {
        i += 1;
    }
    if body[i..].starts_with(b"\r\n") {
        i + 2
    } else if body[i..].starts_with(b"\n") {
        i + 1
    } else {
        i
    }
}

fn trim_line_end(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\r\n")
        .or_else(|| raw.strip_suffix(b"\n"))
        .unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_boundary_quoted_or_not() {
        assert_eq!(
            boundary("multipart/form-data; boundary=MIME_boundary").as_deref(),
            Some("MIME_boundary")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/xml"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn splits_parts_with_names_types_and_binary_bodies() {
        let mut body = b"--B\r\nContent-Disposition: form-data; name=\"anpr.xml\"; filename=\"anpr.xml\"\r\nContent-Type: application/xml\r\n\r\n<a/>\r\n".to_vec();
        body.extend_from_slice(b"--B\r\nContent-Disposition: form-data; name=\"detectionPicture.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n");
        // JPEG bytes that happen to contain the delimiter mid-line.
        body.extend_from_slice(&[0xFF, 0xD8, 0xFF, b'-', b'-', b'B', 0x00, 0xFF, 0xD9]);
        body.extend_from_slice(b"\r\n--B--\r\n");
        let parts = parts(&body, "B").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name.as_deref(), Some("anpr.xml"));
        assert_eq!(parts[0].filename.as_deref(), Some("anpr.xml"));
        assert_eq!(parts[0].content_type.as_deref(), Some("application/xml"));
        assert_eq!(parts[0].body, b"<a/>");
        assert_eq!(parts[1].name.as_deref(), Some("detectionPicture.jpg"));
        assert_eq!(
            parts[1].body,
            &[0xFF, 0xD8, 0xFF, b'-', b'-', b'B', 0x00, 0xFF, 0xD9]
        );
    }

    #[test]
    fn accepts_bare_newlines_and_parts_without_disposition() {
        let body = b"preamble\n--B\nContent-Type: text/xml\n\n<x/>\n--B--\n";
        let parts = parts(body, "B").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].name, None);
        assert_eq!(parts[0].content_type.as_deref(), Some("text/xml"));
        assert_eq!(parts[0].body, b"<x/>");
    }

    #[test]
    fn rejects_a_body_without_boundary_or_closing_line() {
        assert!(parts(b"<xml/>", "B").unwrap_err().contains("no boundary"));
        let open = b"--B\r\nContent-Type: text/xml\r\n\r\n<x/>";
        assert!(parts(open, "B").unwrap_err().contains("closing boundary"));
    }
}
