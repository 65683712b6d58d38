//! Identity documents. The number is checked here and then only ever leaves
//! this type as a keyed hash (for lookup) or a masked string (for display):
//! it is never written to the database, a log or an error message in clear.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::mask::mask_all;
use crate::secret::DeviceSecret;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// 居民身份证, 18 characters with a GB 11643 check digit.
    ResidentId,
    Passport,
    /// 港澳居民来往内地通行证.
    HkMacaoPermit,
    /// 台湾居民来往大陆通行证.
    TaiwanPermit,
    /// 外国人永久居留身份证.
    ForeignPermanent,
    Other,
}

impl IdKind {
    pub const ALL: [IdKind; 6] = [
        IdKind::ResidentId,
        IdKind::Passport,
        IdKind::HkMacaoPermit,
        IdKind::TaiwanPermit,
        IdKind::ForeignPermanent,
        IdKind::Other,
    ];

    /// The value stored in `person.id_kind` and hashed with the number.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::ResidentId => "resident_id",
            IdKind::Passport => "passport",
            IdKind::HkMacaoPermit => "hk_macao_permit",
            IdKind::TaiwanPermit => "taiwan_permit",
            IdKind::ForeignPermanent => "foreign_permanent",
            IdKind::Other => "other",
        }
    }
}

impl std::str::FromStr for IdKind {
    type Err = String;
    fn from_str(s: &str) -> Result<IdKind, String> {
        let k = match s.trim() {
            "resident_id" | "身份证" | "居民身份证" => IdKind::ResidentId,
            "passport" | "护照" => IdKind::Passport,
            "hk_macao_permit" | "港澳通行证" | "回乡证" => IdKind::HkMacaoPermit,
            "taiwan_permit" | "台胞证" => IdKind::TaiwanPermit,
            "foreign_permanent" | "永居证" => IdKind::ForeignPermanent,
            "other" | "其他" => IdKind::Other,
            other => {
                return Err(format!(
                    "unknown ID document kind {other:?}; expected one of {}",
                    IdKind::ALL.map(|k| k.as_str()).join(", ")
                ))
            }
        };
        Ok(k)
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated identity document. `Debug` prints the masked form.
#[derive(Clone, PartialEq, Eq)]
pub struct IdDocument {
    kind: IdKind,
    number: String,
}

/// GB 11643-1999 weights for the first 17 digits, and the check character for
/// each remainder of the weighted sum modulo 11.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Province-level codes that open a resident ID number (81/82/83: residence
/// permits of Hong Kong, Macao and Taiwan residents).
const PROVINCES: [u8; 35] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
];

impl IdDocument {
    /// Validates `raw` as a document of `kind`. Errors describe the problem
    /// without repeating the number.
    pub fn parse(kind: IdKind, raw: &str) -> Result<IdDocument, String> {
        let number: String = raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if number.is_empty() {
            return Err("is empty".into());
        }
        match kind {
            IdKind::ResidentId => check_resident_id(&number)?,
            _ => {
                if !(5..=20).contains(&number.len())
                    || !number.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(format!(
                        "a {} number has 5 to 20 letters and digits",
                        kind.as_str()
                    ));
                }
            }
        }
        Ok(IdDocument { kind, number })
    }

    /// A resident ID number (the common case).
    pub fn resident_id(raw: &str) -> Result<IdDocument, String> {
        IdDocument::parse(IdKind::ResidentId, raw)
    }

    pub fn kind(&self) -> IdKind {
        self.kind
    }

    /// Every character starred, the length kept (`******************`).
    ///
    /// Why nothing is shown: whoever holds the device secret can test a
    /// candidate number against the keyed hash. With the region and the last
    /// four shown, only the birth date was hidden: about 1,700 candidates, a
    /// fraction of a second. A resident ID number has about 3,000 region codes
    /// × 36,525 birth dates in a century × 1,000 sequence numbers ≈ 10^11
    /// valid values; showing any character divides that by 10 or more (the
    /// check character alone by 11, leaving ≈ 10^10), so the masked form shows
    /// none and stays well above 10^10 (`candidates_left`). Other documents
    /// are shorter still. The desk recognises a person by name, household and
    /// phone, and checks a number it is shown with `resident check-id`.
    pub fn masked(&self) -> String {
        mask_all(&self.number)
    }

    /// The lookup key stored in `person.id_hash`: HMAC-SHA256 under the device
    /// secret over `"<kind>:<NUMBER>"`.
    pub fn keyed_hash(&self, secret: &DeviceSecret) -> [u8; 32] {
        secret.keyed_hash("id", format!("{}:{}", self.kind, self.number).as_bytes())
    }
}

impl fmt::Debug for IdDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdDocument({}, {})", self.kind, self.masked())
    }
}

fn check_resident_id(n: &str) -> Result<(), String> {
    let len = n.chars().count();
    if len == 15 && n.chars().all(|c| c.is_ascii_digit()) {
        return Err("is a 15-digit first-generation number; enter the 18-digit number".into());
    }
    if len != 18 {
        return Err(format!("has {len} characters; a resident ID number has 18"));
    }
    let b = n.as_bytes();
    if !b[..17].iter().all(u8::is_ascii_digit) {
        return Err("the first 17 characters must be digits".into());
    }
    let last = b[17] as char;
    if !(last.is_ascii_digit() || last == 'X') {
        return Err("the last character must be a digit or X".into());
    }
    let province = (b[0] - b'0') * 10 + (b[1] - b'0');
    if !PROVINCES.contains(&province) {
        return Err(format!("{province:02} is not a province code"));
    }
    let birth = &n[6..14];
    let date = NaiveDate::parse_from_str(birth, "%Y%m%d")
        .map_err(|_| "the birth date (characters 7 to 14) is not a real date".to_string())?;
    let today = chrono::Local::now().date_naive();
    if date.year() < 1900 || date > today {
        return Err("the birth date (characters 7 to 14) is out of range".into());
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let expected = CHECK[(sum % 11) as usize];
    if last != expected {
        return Err(format!("checksum digit should be {expected}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_resident_ids_including_x_check_digit() {
        assert!(IdDocument::resident_id("510105199001011237").is_ok());
        // Lower-case x is normalised.
        let id = IdDocument::resident_id("11010519491231002x").unwrap();
        assert_eq!(id.masked(), "******************");
    }

    #[test]
    fn rejects_a_wrong_check_digit_naming_the_right_one() {
        let e = IdDocument::resident_id("510105199001011238").unwrap_err();
        assert_eq!(e, "checksum digit should be 7");
        assert!(!e.contains("5101051990"), "error must not echo the number");
    }

    #[test]
    fn rejects_bad_length_dates_and_regions() {
        assert!(IdDocument::resident_id("51010519900101123")
            .unwrap_err()
            .contains("has 17 characters"));
        assert!(IdDocument::resident_id("510105900101123")
            .unwrap_err()
            .contains("15-digit"));
        assert!(IdDocument::resident_id("510105199002301234")
            .unwrap_err()
            .contains("not a real date"));
        assert!(IdDocument::resident_id("990105199001011234")
            .unwrap_err()
            .contains("province"));
        assert!(IdDocument::resident_id("51010519900101123A")
            .unwrap_err()
            .contains("digit or X"));
    }

    #[test]
    fn masks_and_debug_never_show_the_birth_date() {
        let id = IdDocument::resident_id("510105199001011237").unwrap();
        assert_eq!(id.masked(), "******************");
        assert!(!format!("{id:?}").contains("19900101"));
        assert!(!format!("{id:?}").contains("1237"));
    }

    /// How many valid resident ID numbers fit a masked form, for an attacker
    /// who knows the structure: ~3,000 county-level region codes, birth dates
    /// over a century, 1,000 sequence numbers, and a check character that
    /// keeps one candidate in 11 when it is shown. Digits shown in a field
    /// divide that field's count by 10 each (at least one value stays).
    fn candidates_left(masked: &str) -> f64 {
        let shown = |range: std::ops::Range<usize>| {
            masked[range].chars().filter(|c| *c != '*').count() as i32
        };
        let field = |values: f64, shown: i32| (values / 10f64.powi(shown)).max(1.0);
        let check = if shown(17..18) == 1 { 11.0 } else { 1.0 };
        field(3_000.0, shown(0..6)) * field(36_525.0, shown(6..14)) * field(1_000.0, shown(14..17))
            / check
    }

    #[test]
    fn a_masked_resident_id_leaves_at_least_ten_billion_candidates() {
        let id = IdDocument::resident_id("11010519491231002X").unwrap();
        let masked = id.masked();
        assert!(masked.chars().filter(|c| *c != '*').count() <= 8);
        assert!(candidates_left(&masked) >= 1e10, "{masked}");
        // The old form hid only the birth date: a few thousand candidates.
        assert!(candidates_left("110105********002X") < 1e4);
        // Even the check character alone would fall short of 10^10.
        assert!(candidates_left("*****************X") < 1e10);
    }

    #[test]
    fn keyed_hash_depends_on_kind_and_number_not_case() {
        let dir = std::env::temp_dir().join(format!("gh-idhash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = DeviceSecret::load_or_create(&dir).unwrap();
        let a = IdDocument::resident_id("11010519491231002X").unwrap();
        let b = IdDocument::resident_id("11010519491231002x").unwrap();
        let p = IdDocument::parse(IdKind::Passport, "11010519491231002X").unwrap();
        assert_eq!(a.keyed_hash(&secret), b.keyed_hash(&secret));
        assert_ne!(a.keyed_hash(&secret), p.keyed_hash(&secret));
        assert_eq!(
            a.keyed_hash(&secret),
            secret.keyed_hash("id", b"resident_id:11010519491231002X")
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn other_documents_need_five_to_twenty_letters_or_digits() {
        assert_eq!(
            IdDocument::parse(IdKind::Passport, "e12345678")
                .unwrap()
                .masked(),
            "*********"
        );
        assert!(IdDocument::parse(IdKind::Passport, "E12").is_err());
        assert!(IdDocument::parse(IdKind::Passport, "E123-4567").is_err());
    }
}
