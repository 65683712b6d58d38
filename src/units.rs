//! The one grammar for durations and for sets of weekdays, shared by the
//! config file, the CSV importer, the console and every CLI flag, so a
//! spelling accepted in one place is accepted everywhere.
//!
//! - Durations: a number and a unit, repeated: `90s`, `30m`, `4h`, `2d`, `1h30m`.
//! - Day sets: `daily` (`all`, `every`), `weekdays`, `weekends`, or a comma
//!   list of days (`mon` or `monday`) and ranges (`mon-fri`; a range may run
//!   over the weekend: `fri-mon`). Bit 0 is Monday … bit 6 Sunday.

use std::time::Duration;

/// `30m`, `4h`, `2d`, `1h30m`, `90s`; at least one second.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let bad = || format!("{s:?} is not a duration; write e.g. 30m, 4h, 2d or 1h30m");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// A set of weekdays as a bit set (bit 0 = Monday … bit 6 = Sunday).
pub fn parse_days(raw: &str) -> Result<u8, String> {
    let s = raw.trim().to_ascii_lowercase();
    match s.as_str() {
        "daily" | "all" | "every" => return Ok(0x7f),
        "weekdays" => return Ok(0x1f),
        "weekends" => return Ok(0x60),
        _ => {}
    }
    let day = |d: &str| {
        let d = d.trim();
        DAYS.iter()
            .position(|x| *x == d)
            .or_else(|| FULL_DAYS.iter().position(|x| *x == d))
            .ok_or_else(|| {
                format!(
                    "{d:?} is not a day; use mon, tue, wed, thu, fri, sat, sun, ranges (mon-fri), \
                     weekdays, weekends or daily"
                )
            })
    };
    let mut bits = 0u8;
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (day(a)?, day(b)?),
            None => {
                let d = day(part)?;
                (d, d)
            }
        };
        let mut d = a;
        loop {
            bits |= 1 << d;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    if bits == 0 {
        return Err(format!("{raw:?} names no day"));
    }
    Ok(bits)
}

/// The inverse of [`parse_days`], for display: `mon-fri`, `sat,sun`, `daily`.
pub fn format_days(bits: u8) -> String {
    if bits & 0x7f == 0x7f {
        return "daily".into();
    }
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < 7 {
        if bits & (1 << i) == 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < 7 && bits & (1 << (i + 1)) != 0 {
            i += 1;
        }
        out.push(if i - start >= 2 {
            format!("{}-{}", DAYS[start], DAYS[i])
        } else if i > start {
            format!("{},{}", DAYS[start], DAYS[i])
        } else {
            DAYS[start].to_string()
        });
        i += 1;
    }
    out.join(",")
}

/// Minutes after local midnight as `HH:MM`, for display of time windows.
pub fn format_minute(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_combine_units() {
        assert_eq!(parse_duration("4h").unwrap().as_secs(), 4 * 3600);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
        assert_eq!(parse_duration(" 90s ").unwrap().as_secs(), 90);
        for bad in ["4", "0h", "4 hours", "h", "5y", "", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn day_sets_accept_names_lists_ranges_and_the_shorthands() {
        assert_eq!(parse_days("mon-fri").unwrap(), 0x1f);
        assert_eq!(parse_days("weekdays").unwrap(), 0x1f);
        assert_eq!(parse_days("sat,sun").unwrap(), 0x60);
        assert_eq!(parse_days("Weekends").unwrap(), 0x60);
        assert_eq!(parse_days("Monday,wed").unwrap(), 0b101);
        assert_eq!(parse_days("daily").unwrap(), 0x7f);
        assert_eq!(parse_days("fri-mon").unwrap(), 0b111_0001);
        for bad in ["funday", "sunx", "mon-funday", "", ","] {
            assert!(parse_days(bad).is_err(), "{bad:?}");
        }
    }
}
