//! Dates, durations and weekly windows as people write them: `2027-06-30` or
//! Excel's `2027/6/30`, `4h` or `1h30m`, `mon-fri`, `07:00-22:00`.

use chrono::NaiveDate;

/// A calendar date: `YYYY-MM-DD`, `YYYY/M/D`, `YYYY.M.D` or `YYYYMMDD`.
pub fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    let s = raw.trim();
    let bad = || format!("{s:?} is not a date; write it as YYYY-MM-DD, e.g. 2027-06-30");
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return NaiveDate::parse_from_str(s, "%Y%m%d").map_err(|_| bad());
    }
    let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
    if parts.len() != 3 || parts[0].len() != 4 {
        return Err(bad());
    }
    let num = |p: &str| p.parse::<u32>().ok().filter(|_| (1..=2).contains(&p.len()));
    let (Ok(y), Some(m), Some(d)) = (parts[0].parse::<i32>(), num(parts[1]), num(parts[2])) else {
        return Err(bad());
    };
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| format!("{s:?} is not a real date"))
}

// One grammar for the whole product (crate::units): the importer, the
// console and the config accept the same spellings.
pub use crate::units::{parse_days, parse_duration};

/// `07:00-22:00` → minutes after midnight, start inclusive, end exclusive
/// (`24:00` allowed as an end).
pub fn parse_time_window(raw: &str) -> Result<(u16, u16), String> {
    let s = raw.trim();
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a time window; write e.g. 07:00-22:00"))?;
    let minute = |t: &str| -> Result<u16, String> {
        let (h, m) = t
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("{t:?} is not a time; write HH:MM"))?;
        match (h.parse::<u16>(), m.parse::<u16>()) {
            (Ok(h), Ok(m)) if m < 60 && (h < 24 || (h == 24 && m == 0)) => Ok(h * 60 + m),
            _ => Err(format!("{t:?} is not a time; write HH:MM")),
        }
    };
    let (start, end) = (minute(a)?, minute(b)?);
    if start >= 1440 || end <= start {
        return Err(format!(
            "{s:?}: the end must be after the start within one day (split overnight windows in two)"
        ));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::format_days;

    #[test]
    fn dates_accept_iso_and_excel_spellings() {
        let d = NaiveDate::from_ymd_opt(2027, 6, 30).unwrap();
        for s in [
            "2027-06-30",
            "2027/6/30",
            "2027.6.30",
            "20270630",
            " 2027-6-30 ",
        ] {
            assert_eq!(parse_date(s).unwrap(), d, "{s}");
        }
        assert!(parse_date("2027-02-30")
            .unwrap_err()
            .contains("not a real date"));
        assert!(parse_date("30/06/2027").is_err());
        assert!(parse_date("next june").is_err());
    }

    #[test]
    fn days_parse_ranges_lists_and_names_and_print_back() {
        assert_eq!(parse_days("mon-fri").unwrap(), 0x1f);
        assert_eq!(parse_days("sat,sun").unwrap(), 0x60);
        assert_eq!(parse_days("Monday,wed").unwrap(), 0b101);
        assert_eq!(parse_days("daily").unwrap(), 0x7f);
        assert_eq!(parse_days("fri-mon").unwrap(), 0b111_0001);
        assert!(parse_days("funday").is_err());
        assert_eq!(format_days(0x1f), "mon-fri");
        assert_eq!(format_days(0x60), "sat,sun");
        assert_eq!(format_days(0b1010101), "mon,wed,fri,sun");
        assert_eq!(format_days(0x7f), "daily");
    }

    #[test]
    fn time_windows_are_within_one_day() {
        assert_eq!(parse_time_window("07:00-22:00").unwrap(), (420, 1320));
        assert_eq!(parse_time_window("00:00-24:00").unwrap(), (0, 1440));
        assert!(parse_time_window("22:00-06:00")
            .unwrap_err()
            .contains("overnight"));
        assert!(parse_time_window("7-22").is_err());
        assert!(parse_time_window("07:60-08:00").is_err());
    }
}
