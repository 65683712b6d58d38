//! From what a camera read to the plates worth looking up.
//!
//! Cameras add noise a register never holds (a colour prefix, full-width
//! digits, "无车牌" when they saw no plate), and their OCR confuses a few
//! characters. This module turns the camera's text into candidates, the exact
//! reading first and, where a gate tolerates it, each single swap of a
//! confusable character, each candidate saying which swap made it. It is pure:
//! looking candidates up is the caller's business ([`resolve`]).

use serde::Serialize;

use crate::domain::{Plate, PLATE_EMBASSY, PLATE_PROVINCES};

/// Pairs LPR OCR confuses on Chinese plates; each is tried both ways.
pub const OCR_CONFUSIONS: [(char, char); 3] = [('0', 'D'), ('8', 'B'), ('2', 'Z')];

/// Plate colours some cameras put in front of the text (蓝川A12345).
const COLOUR_PREFIXES: &str = "蓝黄绿白黑";

/// Texts cameras send when they detected a vehicle but read no plate.
const NO_PLATE: [&str; 6] = ["无车牌", "无牌", "车牌", "未识别", "UNKNOWN", "NOPLATE"];

/// A swap of one confusable character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Substitution {
    /// Character index in the plate (0 is the province character).
    pub position: usize,
    /// What the camera read there.
    pub read: char,
    /// What was looked up instead.
    pub tried: char,
}

impl std::fmt::Display for Substitution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} as {} at position {}",
            self.read, self.tried, self.position
        )
    }
}

/// A plate to look up, and the swap that produced it (none for the exact reading).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlateCandidate {
    pub plate: Plate,
    pub substitution: Option<Substitution>,
}

/// What the camera read, normalised, with the candidates to look up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlateRead {
    /// The camera's text after normalisation (may itself be no valid plate
    /// when only a tolerated swap makes one).
    pub text: String,
    /// Never empty; the exact reading first when it is a valid plate.
    candidates: Vec<PlateCandidate>,
}

impl PlateRead {
    pub fn candidates(&self) -> &[PlateCandidate] {
        &self.candidates
    }

    /// The exact reading when valid, else the first tolerated swap.
    pub fn primary(&self) -> &PlateCandidate {
        // Non-empty by construction in `read_plate`.
        &self.candidates[0]
    }

    /// The candidate for `plate`, to learn which swap (if any) it took.
    pub fn candidate(&self, plate: &Plate) -> Option<&PlateCandidate> {
        self.candidates.iter().find(|c| &c.plate == plate)
    }
}

/// What the camera's text amounts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraText {
    /// A vehicle without a readable plate: nothing to look up.
    NoPlate,
    Read(PlateRead),
}

/// Normalises a camera's text and lists the candidates; `tolerate` adds the
/// single swaps of [`OCR_CONFUSIONS`]. Errors name the text and the problem.
pub fn read_plate(raw: &str, tolerate: bool) -> Result<CameraText, String> {
    let text = clean(raw);
    if text.is_empty() || NO_PLATE.contains(&text.as_str()) {
        return Ok(CameraText::NoPlate);
    }
    let mut candidates = Vec::new();
    let exact = text.parse::<Plate>();
    if let Ok(plate) = &exact {
        candidates.push(PlateCandidate {
            plate: plate.clone(),
            substitution: None,
        });
    }
    if tolerate {
        let chars: Vec<char> = text.chars().collect();
        // The province character is never a Latin letter or digit.
        for position in 1..chars.len() {
            let read = chars[position];
            let Some(tried) = confused_with(read) else {
                continue;
            };
            let mut swapped = chars.clone();
            swapped[position] = tried;
            let Ok(plate) = swapped.iter().collect::<String>().parse::<Plate>() else {
                continue;
            };
            if candidates.iter().all(|c| c.plate != plate) {
                candidates.push(PlateCandidate {
                    plate,
                    substitution: Some(Substitution {
                        position,
                        read,
                        tried,
                    }),
                });
            }
        }
    }
    match exact {
        Err(why) if candidates.is_empty() => Err(why),
        _ => Ok(CameraText::Read(PlateRead { text, candidates })),
    }
}

fn confused_with(c: char) -> Option<char> {
    OCR_CONFUSIONS.iter().find_map(|&(a, b)| {
        if c == a {
            Some(b)
        } else if c == b {
            Some(a)
        } else {
            None
        }
    })
}

/// Full-width forms to ASCII, case and separators as [`Plate::normalise`],
/// and a leading plate colour dropped.
fn clean(raw: &str) -> String {
    let half: String = raw
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect();
    let mut text = Plate::normalise(&half);
    // 黄绿 (large new-energy vehicles) is two colour characters.
    for _ in 0..2 {
        let mut chars = text.chars();
        let (Some(first), Some(second)) = (chars.next(), chars.next()) else {
            break;
        };
        let plate_follows = second == PLATE_EMBASSY
            || PLATE_PROVINCES.contains(second)
            || COLOUR_PREFIXES.contains(second);
        if COLOUR_PREFIXES.contains(first) && plate_follows {
            text = text[first.len_utf8()..].to_string();
        }
    }
    text
}

/// Which candidate to present to the gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// The exact reading when it is known or nothing else is; otherwise the
    /// one tolerated swap that is known.
    Present(&'a PlateCandidate),
    /// More than one tolerated swap is known and the exact reading is not:
    /// guessing could open for the wrong vehicle, so open for none.
    Ambiguous(Vec<&'a PlateCandidate>),
}

/// Picks the candidate to present; `is_known` answers from the register
/// (vehicles, visitor passes, the watchlist: whatever the gate acts on).
/// A watch-listed exact reading is therefore always presented as read: a
/// swap never carries a listed car in under a resident's plate.
pub fn resolve<'a>(read: &'a PlateRead, is_known: impl Fn(&Plate) -> bool) -> Resolution<'a> {
    let exact = read.candidates.iter().find(|c| c.substitution.is_none());
    if let Some(exact) = exact.filter(|c| is_known(&c.plate)) {
        return Resolution::Present(exact);
    }
    let known: Vec<&PlateCandidate> = read
        .candidates
        .iter()
        .filter(|c| c.substitution.is_some() && is_known(&c.plate))
        .collect();
    match known.as_slice() {
        [one] => Resolution::Present(one),
        [] => Resolution::Present(exact.unwrap_or(read.primary())),
        _ => Resolution::Ambiguous(known),
    }
}

/// The candidates on the station's watchlist other than `presented`: the car
/// may be the listed one misread, so each raises an alarm even when the gate
/// decided on another candidate (or on none).
pub fn listed_alternatives<'a>(
    read: &'a PlateRead,
    presented: Option<&Plate>,
    is_listed: impl Fn(&Plate) -> bool,
) -> Vec<&'a PlateCandidate> {
    read.candidates
        .iter()
        .filter(|c| Some(&c.plate) != presented && is_listed(&c.plate))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str, tolerate: bool) -> PlateRead {
        match read_plate(raw, tolerate).unwrap() {
            CameraText::Read(r) => r,
            CameraText::NoPlate => panic!("{raw} read as no plate"),
        }
    }

    fn plates(r: &PlateRead) -> Vec<&str> {
        r.candidates().iter().map(|c| c.plate.as_str()).collect()
    }

    #[test]
    fn without_tolerance_only_the_exact_reading_is_a_candidate() {
        let r = read("川A 8Z3D5", false);
        assert_eq!(plates(&r), ["川A8Z3D5"]);
        assert_eq!(r.primary().substitution, None);
    }

    #[test]
    fn tolerance_adds_each_single_swap_in_order_and_records_it() {
        let r = read("川A80125", true);
        assert_eq!(plates(&r), ["川A80125", "川AB0125", "川A8D125", "川A801Z5"]);
        assert_eq!(
            r.candidates()[1].substitution,
            Some(Substitution {
                position: 2,
                read: '8',
                tried: 'B'
            })
        );
        assert_eq!(
            r.candidates()[3].substitution.unwrap().to_string(),
            "read 2 as Z at position 5"
        );
    }

    #[test]
    fn tolerance_repairs_a_city_letter_read_as_a_digit() {
        // 8 in the city position is no plate; B is.
        let r = read("川812345", true);
        assert_eq!(r.text, "川812345");
        assert_eq!(r.primary().plate.as_str(), "川B12345");
        assert_eq!(r.primary().substitution.unwrap().tried, 'B');
        assert!(read_plate("川812345", false).is_err());
    }

    #[test]
    fn rejects_text_that_no_swap_makes_a_plate_naming_it() {
        let err = read_plate("XA12345", true).unwrap_err();
        assert!(err.contains("\"XA12345\""), "{err}");
        assert!(err.contains("province"), "{err}");
        assert!(read_plate("川A12", true).is_err());
    }

    #[test]
    fn cleans_colour_prefix_full_width_and_case() {
        assert_eq!(read("蓝川a12345", false).text, "川A12345");
        assert_eq!(read("黄绿粤B12345D", false).text, "粤B12345D");
        assert_eq!(read("京Ａ１２３４５", false).text, "京A12345");
        assert_eq!(read("使014123", false).text, "使014123");
        // 黑 is a colour and Heilongjiang's province character: dropped only
        // when a plate follows it.
        assert_eq!(read("黑A12345", false).text, "黑A12345");
        assert_eq!(read("蓝黑A12345", false).text, "黑A12345");
    }

    #[test]
    fn no_plate_texts_mean_nothing_to_look_up() {
        for t in ["无车牌", "", "  ", "unknown", "车牌"] {
            assert_eq!(read_plate(t, true).unwrap(), CameraText::NoPlate, "{t:?}");
        }
    }

    #[test]
    fn resolve_prefers_a_known_exact_reading() {
        let r = read("川A80125", true);
        let known = |p: &Plate| ["川A80125", "川AB0125"].contains(&p.as_str());
        assert_eq!(resolve(&r, known), Resolution::Present(&r.candidates()[0]));
    }

    #[test]
    fn resolve_takes_the_one_known_swap() {
        let r = read("川A80125", true);
        let known = |p: &Plate| p.as_str() == "川A8D125";
        let Resolution::Present(c) = resolve(&r, known) else {
            panic!("ambiguous")
        };
        assert_eq!(c.plate.as_str(), "川A8D125");
        assert_eq!(c.substitution.unwrap().read, '0');
    }

    #[test]
    fn resolve_presents_the_exact_reading_when_nothing_is_known() {
        let r = read("川A80125", true);
        assert_eq!(
            resolve(&r, |_| false),
            Resolution::Present(&r.candidates()[0])
        );
    }

    #[test]
    fn resolve_refuses_to_guess_between_two_known_swaps() {
        let r = read("川A80125", true);
        let known = |p: &Plate| ["川AB0125", "川A801Z5"].contains(&p.as_str());
        let Resolution::Ambiguous(both) = resolve(&r, known) else {
            panic!("should be ambiguous")
        };
        assert_eq!(both.len(), 2);
    }

    #[test]
    fn resolve_never_swaps_away_from_a_watch_listed_reading() {
        // 川A80125 is on the watchlist; one swap away is a resident's 川AB0125.
        let r = read("川A80125", true);
        let listed = |p: &Plate| p.as_str() == "川A80125";
        let known = |p: &Plate| listed(p) || p.as_str() == "川AB0125";
        assert_eq!(resolve(&r, known), Resolution::Present(&r.candidates()[0]));
        assert!(listed_alternatives(&r, Some(&r.candidates()[0].plate), listed).is_empty());
    }

    #[test]
    fn a_listed_swap_beside_the_plate_decided_on_is_reported() {
        // The resident's plate read exactly; a swap of it is listed.
        let r = read("川AB0125", true);
        let listed = |p: &Plate| p.as_str() == "川A80125";
        let known = |p: &Plate| listed(p) || p.as_str() == "川AB0125";
        let Resolution::Present(chosen) = resolve(&r, known) else {
            panic!("ambiguous")
        };
        assert_eq!(chosen.plate.as_str(), "川AB0125");
        let also = listed_alternatives(&r, Some(&chosen.plate), listed);
        assert_eq!(also.len(), 1);
        assert_eq!(also[0].plate.as_str(), "川A80125");
        assert_eq!(also[0].substitution.unwrap().tried, '8');
        // A registered swap and a listed swap of an unknown reading: open for neither.
        let r = read("川AB01Z5", true);
        let known = |p: &Plate| ["川AB0125", "川A801Z5"].contains(&p.as_str());
        assert!(matches!(resolve(&r, known), Resolution::Ambiguous(_)));
    }
}
