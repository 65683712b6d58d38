//! Small types for the domain words every module shares.
//!
//! Parsing and validation happen once, where a value enters the system; after
//! that a `GateId` is known to be well formed and nobody re-checks it.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod embedding;
pub mod id_number;
pub mod mask;
pub mod person;
pub mod phone;

pub use id_number::{IdDocument, IdKind};
pub use mask::masked_name;
pub use person::{validate_name, PersonStatus, ResidentRole};
pub use phone::Phone;

/// Longest PIN a keypad may send before `#` (the reader's limit; passes and
/// the config's PIN lengths stay within it).
pub const MAX_PIN_DIGITS: usize = 12;

/// Identifier of a gate as written in the config (`east`, `car-in`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GateId(String);

impl GateId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GateId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        validate_slug(&s).map(|()| GateId(s))
    }
}

impl From<GateId> for String {
    fn from(g: GateId) -> String {
        g.0
    }
}

impl std::str::FromStr for GateId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        GateId::try_from(s.to_string())
    }
}

impl fmt::Display for GateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Ids that end up in MQTT topics and file names: keep them to a safe alphabet.
pub fn validate_slug(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 {
        return Err(format!(
            "expected 1..=64 characters, got {} in {s:?}",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{s:?} contains {c:?}; use only ASCII letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_id_rejects_characters_unsafe_in_mqtt_topics() {
        assert!("east".parse::<GateId>().is_ok());
        assert!("car-in_2".parse::<GateId>().is_ok());
        assert!("east/1".parse::<GateId>().is_err());
        assert!("east+".parse::<GateId>().is_err());
        assert!("".parse::<GateId>().is_err());
    }
}

/// A person in the register (row id of `person`). Also the pseudonym under
/// which a removed person's past events remain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResidentId(pub i64);

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "R{}", self.0)
    }
}

impl std::str::FromStr for ResidentId {
    type Err = String;
    /// Accepts `R42` or `42`.
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix(['R', 'r']).unwrap_or(s);
        digits
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(ResidentId)
            .ok_or_else(|| format!("expected a resident id like R42, got {s:?}"))
    }
}

/// A card as the register knows it: facility code and number from a
/// formatted Wiegand frame, or the raw bits of a frame in an unknown format.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CardNumber {
    Formatted { facility: u32, number: u64 },
    Raw(String),
}

impl CardNumber {
    /// The canonical key stored in `card.card_key`.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// For logs and events: enough to tell cards apart, not enough to clone one.
    pub fn masked(&self) -> String {
        match self {
            CardNumber::Formatted { facility, number } => {
                let n = number.to_string();
                let keep = n.len().min(2);
                format!(
                    "{facility}:{}{}",
                    "*".repeat(n.len() - keep),
                    &n[n.len() - keep..]
                )
            }
            CardNumber::Raw(bits) => format!("raw:{}bits", bits.len()),
        }
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CardNumber::Formatted { facility, number } => write!(f, "{facility}:{number}"),
            CardNumber::Raw(bits) => write!(f, "raw:{bits}"),
        }
    }
}

impl std::str::FromStr for CardNumber {
    type Err = String;
    /// `10:12345` (facility:number), `12345` (facility 0) or `raw:0101…`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(bits) = s.strip_prefix("raw:") {
            if bits.is_empty() || bits.len() > 128 || !bits.bytes().all(|b| b == b'0' || b == b'1')
            {
                return Err(format!("expected raw:<1..128 binary digits>, got {s:?}"));
            }
            return Ok(CardNumber::Raw(bits.to_string()));
        }
        let (facility, number) = match s.split_once(':') {
            Some((f, n)) => (f, n),
            None => ("0", s),
        };
        let facility = facility
            .parse::<u32>()
            .map_err(|_| format!("card {s:?}: facility code {facility:?} is not a number"))?;
        let number = number
            .parse::<u64>()
            .map_err(|_| format!("card {s:?}: card number {number:?} is not a number"))?;
        Ok(CardNumber::Formatted { facility, number })
    }
}

impl TryFrom<String> for CardNumber {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<CardNumber> for String {
    fn from(c: CardNumber) -> String {
        c.to_string()
    }
}

/// The layout of a card's Wiegand frame. Part of what identifies a card: a
/// card enrolled as 26-bit is not the 34-bit frame with the same numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardFormat {
    /// HID H10301: 8-bit facility code, 16-bit card number.
    Wiegand26,
    /// 16-bit facility code, 16-bit card number.
    Wiegand34,
    /// HID H10304: 16-bit facility code, 19-bit card number.
    Wiegand37,
    /// The raw bits of a frame in a format the reader does not decode.
    Raw,
}

impl CardFormat {
    /// The value stored in `card.format`.
    pub fn as_str(self) -> &'static str {
        match self {
            CardFormat::Wiegand26 => "wiegand26",
            CardFormat::Wiegand34 => "wiegand34",
            CardFormat::Wiegand37 => "wiegand37",
            CardFormat::Raw => "raw",
        }
    }

    /// Largest facility code and card number the format can carry.
    fn limits(self) -> Option<(u32, u64)> {
        match self {
            CardFormat::Wiegand26 => Some((255, 65_535)),
            CardFormat::Wiegand34 => Some((65_535, 65_535)),
            CardFormat::Wiegand37 => Some((65_535, 524_287)),
            CardFormat::Raw => None,
        }
    }

    /// Whether `card` can be sent in this format.
    pub fn check(self, card: &CardNumber) -> Result<(), String> {
        match (self.limits(), card) {
            (None, CardNumber::Raw(_)) => Ok(()),
            (None, CardNumber::Formatted { .. }) => Err(format!(
                "card {card} has a facility code and number; raw cards are written raw:<bits>"
            )),
            (Some(_), CardNumber::Raw(_)) => {
                Err(format!("card {card} is raw bits; use --format raw"))
            }
            (Some((max_f, max_n)), CardNumber::Formatted { facility, number }) => {
                if *facility > max_f {
                    Err(format!(
                        "facility code {facility} does not fit {} (at most {max_f})",
                        self.as_str()
                    ))
                } else if *number > max_n {
                    Err(format!(
                        "card number {number} does not fit {} (at most {max_n})",
                        self.as_str()
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The smallest format that carries `card` (raw for raw bits).
    pub fn infer(card: &CardNumber) -> Result<CardFormat, String> {
        if matches!(card, CardNumber::Raw(_)) {
            return Ok(CardFormat::Raw);
        }
        [
            CardFormat::Wiegand26,
            CardFormat::Wiegand34,
            CardFormat::Wiegand37,
        ]
        .into_iter()
        .find(|f| f.check(card).is_ok())
        .ok_or_else(|| {
            format!("card {card} fits no supported format (facility ≤ 65535, number ≤ 524287)")
        })
    }
}

impl fmt::Display for CardFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CardFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<CardFormat, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "wiegand26" | "w26" | "26" => CardFormat::Wiegand26,
            "wiegand34" | "w34" | "34" => CardFormat::Wiegand34,
            "wiegand37" | "w37" | "37" => CardFormat::Wiegand37,
            "raw" => CardFormat::Raw,
            _ => {
                return Err(format!(
                    "unknown card format {s:?}; expected wiegand26, wiegand34, wiegand37 or raw"
                ))
            }
        })
    }
}

/// A card as a reader sent it: its numbers and the frame format they came in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CardRead {
    pub number: CardNumber,
    pub format: CardFormat,
}

impl CardRead {
    /// The register's key of the number (`card.card_key`); the format is
    /// compared beside it.
    pub fn key(&self) -> String {
        self.number.key()
    }

    pub fn masked(&self) -> String {
        self.number.masked()
    }
}

/// The card in the format an enrolment without `--format` gives it (the
/// smallest that carries it): for callers that name a card by its numbers.
impl From<CardNumber> for CardRead {
    fn from(number: CardNumber) -> CardRead {
        let format = CardFormat::infer(&number).unwrap_or(CardFormat::Raw);
        CardRead { number, format }
    }
}

impl fmt::Display for CardRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.number, self.format)
    }
}

/// A mainland Chinese licence plate, normalised (upper case, no spaces or dots):
/// regular (川A12345), new-energy (川AD12345), special suffixes (川A1234警, 粤Z1234港)
/// and embassy plates (使014123).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Plate(String);

/// Province abbreviations that open a plate.
pub const PLATE_PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";
/// Suffix characters of special plates (police, coach, trailer, consulate, HK, Macao).
pub const PLATE_SUFFIXES: &str = "警学挂领港澳";
/// Embassy plates open with this character instead of a province: 使 + 3-digit
/// embassy code + 3-digit serial (使014123).
pub const PLATE_EMBASSY: char = '使';

impl Plate {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// New-energy plates have six characters after the letter.
    pub fn is_new_energy(&self) -> bool {
        self.0.chars().count() == 8
    }

    pub fn masked(&self) -> String {
        // Plates are public on the street; events keep them whole so the station can act.
        self.0.clone()
    }

    /// The text parsing validates: upper case, without the spaces, dots and
    /// dashes people and cameras put between groups. Not yet a valid plate.
    pub fn normalise(s: &str) -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '·' && *c != '.' && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect()
    }
}

impl std::str::FromStr for Plate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = Plate::normalise(s);
        let chars: Vec<char> = norm.chars().collect();
        let bad = |why: &str| Err(format!("plate {s:?}: {why}"));
        if chars.first() == Some(&PLATE_EMBASSY) {
            if chars.len() != 7 || !chars[1..].iter().all(char::is_ascii_digit) {
                return bad("an embassy plate is 使 followed by 6 digits");
            }
            return Ok(Plate(norm));
        }
        if chars.len() < 7 {
            return bad("too short: expected a province character, a letter and 5 characters (6 for new-energy)");
        }
        if !PLATE_PROVINCES.contains(chars[0]) {
            return bad(
                "must start with a province character such as 川 or 京 (使 for embassy plates)",
            );
        }
        if !chars[1].is_ascii_uppercase() {
            return bad("the second character must be a letter (the issuing city)");
        }
        let rest = &chars[2..];
        let alnum =
            |c: &char| c.is_ascii_digit() || (c.is_ascii_uppercase() && *c != 'I' && *c != 'O');
        let ok = match rest.len() {
            5 => {
                if PLATE_SUFFIXES.contains(rest[4]) {
                    rest[..4].iter().all(alnum)
                } else {
                    rest.iter().all(alnum)
                }
            }
            // New-energy: D/F (and A-K for some series) first or last, digits elsewhere.
            6 => rest.iter().all(alnum),
            _ => false,
        };
        if !ok {
            return bad("expected 5 letters/digits (6 for new-energy; I and O are never used) after the city letter");
        }
        Ok(Plate(norm))
    }
}

impl TryFrom<String> for Plate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Plate> for String {
    fn from(p: Plate) -> String {
        p.0
    }
}

impl fmt::Display for Plate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod domain_word_tests {
    use super::*;

    #[test]
    fn card_numbers_parse_and_print_canonically() {
        assert_eq!("10:12345".parse::<CardNumber>().unwrap().key(), "10:12345");
        assert_eq!("12345".parse::<CardNumber>().unwrap().key(), "0:12345");
        assert_eq!("raw:0101".parse::<CardNumber>().unwrap().key(), "raw:0101");
        assert!("10:abc".parse::<CardNumber>().is_err());
        assert!("raw:012".parse::<CardNumber>().is_err());
        assert_eq!(
            "10:12345".parse::<CardNumber>().unwrap().masked(),
            "10:***45"
        );
    }

    #[test]
    fn plates_accept_regular_new_energy_and_special() {
        assert_eq!("川a 12345".parse::<Plate>().unwrap().as_str(), "川A12345");
        assert!("川AD12345".parse::<Plate>().unwrap().is_new_energy());
        assert!("川A1234警".parse::<Plate>().is_ok());
        for special in [
            "川A1234学",
            "川A1234挂",
            "沪A1234领",
            "粤Z1234港",
            "粤Z1234澳",
        ] {
            assert_eq!(special.parse::<Plate>().unwrap().as_str(), special);
        }
        assert_eq!("使 014·123".parse::<Plate>().unwrap().as_str(), "使014123");
        assert!(!"使014123".parse::<Plate>().unwrap().is_new_energy());
        assert!("使01412".parse::<Plate>().is_err());
        assert!("使A14123".parse::<Plate>().is_err());
        assert!("川A1234".parse::<Plate>().is_err());
        assert!("XA12345".parse::<Plate>().is_err());
        assert!("川112345".parse::<Plate>().is_err());
        assert!("川A12O45".parse::<Plate>().is_err());
    }

    #[test]
    fn resident_ids_accept_prefix() {
        assert_eq!("R42".parse::<ResidentId>().unwrap(), ResidentId(42));
        assert_eq!("42".parse::<ResidentId>().unwrap(), ResidentId(42));
        assert!("R0".parse::<ResidentId>().is_err());
        assert!("x".parse::<ResidentId>().is_err());
    }
}
