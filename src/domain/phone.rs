//! Mainland mobile numbers: stored whole (the manager needs to call), shown masked.

use std::fmt;

use serde::{Serialize, Serializer};

use super::mask::mask_middle;

/// An 11-digit mainland mobile number (`1[3-9]` + 9 digits), normalised from
/// forms like `+86 138-0000-0000`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `138****0000`.
    pub fn masked(&self) -> String {
        mask_middle(&self.0, 3, 4)
    }
}

impl std::str::FromStr for Phone {
    type Err = String;
    fn from_str(raw: &str) -> Result<Phone, String> {
        let mut digits: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
            .collect();
        if let Some(rest) = digits.strip_prefix("+86") {
            digits = rest.to_string();
        } else if digits.len() == 13 && digits.starts_with("86") {
            digits = digits[2..].to_string();
        }
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "{raw:?} is not a mobile number (digits only, e.g. 13800000000)"
            ));
        }
        if digits.len() != 11 {
            return Err(format!(
                "{raw:?} has {} digits; a mainland mobile number has 11",
                digits.len()
            ));
        }
        let b = digits.as_bytes();
        if b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
            return Err(format!(
                "{raw:?} is not a mainland mobile number (they start with 13 to 19)"
            ));
        }
        Ok(Phone(digits))
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

/// Serialises masked: a phone that leaves the process whole does so on purpose.
impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_mainland_mobiles_in_common_spellings() {
        for s in [
            "13800000000",
            "+86 138 0000 0000",
            "86-13800000000",
            "(138)0000-0000",
        ] {
            assert_eq!(s.parse::<Phone>().unwrap().as_str(), "13800000000", "{s}");
        }
        assert_eq!(
            "19912345678".parse::<Phone>().unwrap().masked(),
            "199****5678"
        );
    }

    #[test]
    fn rejects_landlines_short_numbers_and_letters() {
        let e = "12800000000".parse::<Phone>().unwrap_err();
        assert!(e.contains("start with 13 to 19"), "{e}");
        assert!("1380000000"
            .parse::<Phone>()
            .unwrap_err()
            .contains("10 digits"));
        assert!("028-85551234".parse::<Phone>().is_err());
        assert!("1380000000a".parse::<Phone>().is_err());
    }

    #[test]
    fn debug_and_json_show_only_the_masked_form() {
        let p: Phone = "13812345678".parse().unwrap();
        assert_eq!(format!("{p:?}"), "Phone(138****5678)");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"138****5678\"");
    }
}
