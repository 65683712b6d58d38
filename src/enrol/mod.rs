//! Enrolment: turning what a property manager types or imports into values the
//! register can trust.
//!
//! Validation happens here, once, where data enters (the CLI, the spreadsheet
//! import and later the web console all parse through these types); masking
//! for display lives beside it so personal data is shown the same way
//! everywhere. Nothing here touches the database except [`import`], which
//! drives the register functions in `store`.

pub mod dates;
pub mod id_number;
pub mod import;

pub mod mask;
pub mod phone;
pub mod text;

pub use id_number::{IdDocument, IdKind};
pub use mask::masked_name;
pub use phone::Phone;

/// A person's name as entered: trimmed, non-empty, printable, at most 64 characters.
pub fn validate_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.chars().count() > 64 {
        return Err(format!(
            "is {} characters long; at most 64",
            name.chars().count()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {c:?}"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_must_be_printable() {
        assert_eq!(validate_name("  张三 ").unwrap(), "张三");
        assert!(validate_name("   ").is_err());
        assert!(validate_name("张\u{7}三").is_err());
        assert!(validate_name(&"名".repeat(65)).is_err());
    }
}
