//! Wiegand frame formats: what a string of bits means once it is decoded from
//! pulses. 26-bit H10301, 34-bit (16-bit facility, 16-bit number), 37-bit
//! H10304, keypad keys (4-bit, or 8-bit with the complement in the high
//! nibble) and raw frames of other plausible lengths.

use crate::domain::{CardFormat, CardNumber};

/// A key on a Wiegand keypad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Digit(u8),
    /// `*`: clears what was typed.
    Clear,
    /// `#`: ends a PIN.
    Enter,
}

impl Key {
    pub fn code(self) -> u8 {
        match self {
            Key::Digit(d) => d,
            Key::Clear => 10,
            Key::Enter => 11,
        }
    }

    fn from_code(code: u8) -> Option<Key> {
        match code {
            0..=9 => Some(Key::Digit(code)),
            10 => Some(Key::Clear),
            11 => Some(Key::Enter),
            _ => None,
        }
    }
}

/// A well-formed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WiegandFrame {
    Card {
        card: CardNumber,
        format: CardFormat,
    },
    Key(Key),
}

/// Why a burst of pulses was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// Parity or check bits wrong (or an impossible key code).
    Parity,
    /// A bit count no known format or raw card has.
    Length,
    /// Pulses that cannot be a Wiegand frame (overlapping, too fast, too long, a stuck line).
    Noise,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    pub kind: RejectKind,
    pub bits: usize,
    pub detail: String,
}

/// Raw frames shorter than this are treated as broken rather than as an unknown card format.
pub const RAW_MIN_BITS: usize = 24;
pub const RAW_MAX_BITS: usize = 128;

fn value(bits: &[bool]) -> u64 {
    bits.iter().fold(0u64, |acc, b| (acc << 1) | u64::from(*b))
}

fn ones(bits: &[bool]) -> usize {
    bits.iter().filter(|b| **b).count()
}

/// Even parity bit `bits[p]` over `bits[range]` (which includes p): total ones even.
fn even_ok(bits: &[bool]) -> bool {
    ones(bits).is_multiple_of(2)
}

fn odd_ok(bits: &[bool]) -> bool {
    ones(bits) % 2 == 1
}

fn parity_error(bits: usize, what: &str) -> Rejection {
    Rejection {
        kind: RejectKind::Parity,
        bits,
        detail: format!("{bits}-bit frame: {what} parity bit wrong"),
    }
}

/// Interprets decoded bits.
pub fn decode(bits: &[bool]) -> Result<WiegandFrame, Rejection> {
    let n = bits.len();
    match n {
        4 => {
            let code = value(bits) as u8;
            Key::from_code(code).map(WiegandFrame::Key).ok_or(Rejection {
                kind: RejectKind::Parity,
                bits: n,
                detail: format!("4-bit key code {code} is not a key"),
            })
        }
        8 => {
            let v = value(bits) as u8;
            let (high, low) = (v >> 4, v & 0x0f);
            if high != !low & 0x0f {
                return Err(Rejection {
                    kind: RejectKind::Parity,
                    bits: n,
                    detail: "8-bit key: high nibble is not the complement of the low nibble"
                        .into(),
                });
            }
            Key::from_code(low).map(WiegandFrame::Key).ok_or(Rejection {
                kind: RejectKind::Parity,
                bits: n,
                detail: format!("8-bit key code {low} is not a key"),
            })
        }
        26 => {
            if !even_ok(&bits[0..13]) {
                return Err(parity_error(n, "leading (even)"));
            }
            if !odd_ok(&bits[13..26]) {
                return Err(parity_error(n, "trailing (odd)"));
            }
            Ok(WiegandFrame::Card {
                card: CardNumber::Formatted {
                    facility: value(&bits[1..9]) as u32,
                    number: value(&bits[9..25]),
                },
                format: CardFormat::Wiegand26,
            })
        }
        34 => {
            if !even_ok(&bits[0..17]) {
                return Err(parity_error(n, "leading (even)"));
            }
            if !odd_ok(&bits[17..34]) {
                return Err(parity_error(n, "trailing (odd)"));
            }
            Ok(WiegandFrame::Card {
                card: CardNumber::Formatted {
                    facility: value(&bits[1..17]) as u32,
                    number: value(&bits[17..33]),
                },
                format: CardFormat::Wiegand34,
            })
        }
        37 => {
            // H10304: bit 1 even over bits 1..=19, bit 37 odd over bits 19..=37 (1-based).
            if !even_ok(&bits[0..19]) {
                return Err(parity_error(n, "leading (even)"));
            }
            if !odd_ok(&bits[18..37]) {
                return Err(parity_error(n, "trailing (odd)"));
            }
            Ok(WiegandFrame::Card {
                card: CardNumber::Formatted {
                    facility: value(&bits[1..17]) as u32,
                    number: value(&bits[17..36]),
                },
                format: CardFormat::Wiegand37,
            })
        }
        RAW_MIN_BITS..=RAW_MAX_BITS => Ok(WiegandFrame::Card {
            card: CardNumber::Raw(bits.iter().map(|b| if *b { '1' } else { '0' }).collect()),
            format: CardFormat::Raw,
        }),
        _ => Err(Rejection {
            kind: RejectKind::Length,
            bits: n,
            detail: format!(
                "{n}-bit frame: not a key (4/8), card (26/34/37) or raw card ({RAW_MIN_BITS}..={RAW_MAX_BITS} bits)"
            ),
        }),
    }
}

fn push_value(out: &mut Vec<bool>, v: u64, width: usize) {
    for i in (0..width).rev() {
        out.push((v >> i) & 1 == 1);
    }
}

/// Sets bit 0 for even parity over `range_lead` and the last bit for odd parity over `range_trail`.
fn with_parity(
    mut body: Vec<bool>,
    lead: std::ops::Range<usize>,
    trail: std::ops::Range<usize>,
) -> Vec<bool> {
    body[0] = ones(&body[lead]) % 2 == 1;
    let last = body.len() - 1;
    body[last] = ones(&body[trail]).is_multiple_of(2);
    body
}

/// The frame a reader sends for a card, choosing the smallest format that
/// holds it (or `format` when given).
pub fn encode_card(card: &CardNumber, format: Option<CardFormat>) -> Result<Vec<bool>, String> {
    let (facility, number) = match card {
        CardNumber::Raw(bits) => return Ok(bits.chars().map(|c| c == '1').collect()),
        CardNumber::Formatted { facility, number } => (u64::from(*facility), *number),
    };
    // The limits of each format are `CardFormat`'s, the register's own rule.
    let fits = |f: CardFormat| f != CardFormat::Raw && f.check(card).is_ok();
    let format = match format {
        Some(f) if fits(f) => f,
        Some(f) => {
            return Err(format!(
                "card {card} does not fit the {} format",
                f.as_str()
            ))
        }
        None => [
            CardFormat::Wiegand26,
            CardFormat::Wiegand34,
            CardFormat::Wiegand37,
        ]
        .into_iter()
        .find(|f| fits(*f))
        .ok_or_else(|| {
            format!("card {card}: facility or number too large for 26/34/37-bit Wiegand")
        })?,
    };
    let mut body = vec![false];
    Ok(match format {
        CardFormat::Wiegand26 => {
            push_value(&mut body, facility, 8);
            push_value(&mut body, number, 16);
            body.push(false);
            with_parity(body, 1..13, 13..25)
        }
        CardFormat::Wiegand34 => {
            push_value(&mut body, facility, 16);
            push_value(&mut body, number, 16);
            body.push(false);
            with_parity(body, 1..17, 17..33)
        }
        CardFormat::Wiegand37 => {
            push_value(&mut body, facility, 16);
            push_value(&mut body, number, 19);
            body.push(false);
            with_parity(body, 1..19, 18..36)
        }
        CardFormat::Raw => return Err(format!("card {card}: raw frames carry their own bits")),
    })
}

/// A keypad key as a 4-bit or 8-bit burst.
pub fn encode_key(key: Key, eight_bit: bool) -> Vec<bool> {
    let code = u64::from(key.code());
    let mut out = Vec::new();
    if eight_bit {
        push_value(&mut out, !code & 0x0f, 4);
    }
    push_value(&mut out, code, 4);
    out
}

/// `"0101"` → bits; anything but 0/1 is an error naming the character.
pub fn parse_bits(s: &str) -> Result<Vec<bool>, String> {
    s.chars()
        .map(|c| match c {
            '0' => Ok(false),
            '1' => Ok(true),
            other => Err(format!("bits {s:?}: {other:?} is not 0 or 1")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(f: u32, n: u64) -> CardNumber {
        CardNumber::Formatted {
            facility: f,
            number: n,
        }
    }

    #[test]
    fn h10301_known_frame_decodes() {
        // Facility 10, card 12345: 0 00001010 0011000000111001 1 (published H10301 example layout).
        let bits = encode_card(&card(10, 12345), None).unwrap();
        assert_eq!(bits.len(), 26);
        let s: String = bits.iter().map(|b| if *b { '1' } else { '0' }).collect();
        assert_eq!(s, "00000101000110000001110011");
        assert_eq!(
            decode(&bits).unwrap(),
            WiegandFrame::Card {
                card: card(10, 12345),
                format: CardFormat::Wiegand26
            }
        );
    }

    #[test]
    fn formats_round_trip_and_pick_the_smallest() {
        for (c, len, fmt) in [
            (card(255, 65535), 26, CardFormat::Wiegand26),
            (card(1000, 65535), 34, CardFormat::Wiegand34),
            (card(1000, 300_000), 37, CardFormat::Wiegand37),
            (card(0, 1), 26, CardFormat::Wiegand26),
        ] {
            let bits = encode_card(&c, None).unwrap();
            assert_eq!(bits.len(), len, "{c}");
            assert_eq!(
                decode(&bits).unwrap(),
                WiegandFrame::Card {
                    card: c,
                    format: fmt
                }
            );
        }
        assert!(encode_card(&card(70000, 1), None).is_err());
        assert!(encode_card(&card(1000, 1), Some(CardFormat::Wiegand26)).is_err());
    }

    #[test]
    fn every_single_bit_flip_in_a_formatted_frame_is_a_parity_error() {
        for c in [card(10, 12345), card(1000, 65000), card(1000, 400_000)] {
            let bits = encode_card(&c, None).unwrap();
            for i in 0..bits.len() {
                let mut broken = bits.clone();
                broken[i] = !broken[i];
                let r = decode(&broken);
                assert_eq!(
                    r.as_ref().map_err(|e| e.kind),
                    Err(RejectKind::Parity),
                    "{c} bit {i}: {r:?}"
                );
            }
        }
    }

    #[test]
    fn keys_decode_in_both_widths() {
        for code in 0..12u8 {
            let key = Key::from_code(code).unwrap();
            assert_eq!(
                decode(&encode_key(key, false)).unwrap(),
                WiegandFrame::Key(key)
            );
            assert_eq!(
                decode(&encode_key(key, true)).unwrap(),
                WiegandFrame::Key(key)
            );
        }
        assert_eq!(
            decode(&parse_bits("11111111").unwrap()).unwrap_err().kind,
            RejectKind::Parity
        );
        assert_eq!(
            decode(&parse_bits("1100").unwrap()).unwrap_err().kind,
            RejectKind::Parity
        );
    }

    #[test]
    fn odd_lengths_are_raw_or_rejected() {
        assert_eq!(decode(&[true; 12]).unwrap_err().kind, RejectKind::Length);
        match decode(&[true; 32]).unwrap() {
            WiegandFrame::Card { card, format } => {
                assert_eq!(format, CardFormat::Raw);
                assert_eq!(card.key(), format!("raw:{}", "1".repeat(32)));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_bits("01x").is_err());
    }
}
