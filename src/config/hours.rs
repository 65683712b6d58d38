//! Per-gate two-factor mode and the weekly hours it applies in, written the
//! way a property manager says them (`"mon-fri 22:00-06:00"`), checked once
//! when the config is read.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a gate needs besides the register's own checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TwoFactor {
    /// Any one credential (card, face, plate, PIN) opens.
    #[default]
    #[serde(rename = "off")]
    Off,
    /// A card opens only together with its owner's face (a 1:1 check); a face
    /// alone (1:N) does not open.
    #[serde(rename = "card+face")]
    CardAndFace,
}

/// How faces open a gate (`face_mode`): the register's size decides which is
/// safe (a 1:N search's stranger rate grows with it; 1:few and 1:1 do not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum FaceMode {
    /// A face alone opens: searched against every enrolled resident.
    #[default]
    #[serde(rename = "1:N")]
    OneToN,
    /// The resident keys in the household number on the gate's keypad, then
    /// looks at the camera: the face is matched against that household's
    /// members only (1:few). A face alone does not open.
    #[serde(rename = "household")]
    Household,
    /// A card opens only together with its owner's face (1:1); a face alone
    /// does not open (`two_factor = "card+face"`).
    #[serde(rename = "card+face")]
    CardAndFace,
}

impl FaceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FaceMode::OneToN => "1:N",
            FaceMode::Household => "household",
            FaceMode::CardAndFace => "card+face",
        }
    }
}

impl From<TwoFactor> for FaceMode {
    fn from(t: TwoFactor) -> FaceMode {
        match t {
            TwoFactor::Off => FaceMode::OneToN,
            TwoFactor::CardAndFace => FaceMode::CardAndFace,
        }
    }
}

/// What a card + face gate does when none of its cameras works (lost, or
/// face recognition out of service).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaceFallback {
    /// The card alone opens, flagged `face_unavailable` in the event: a card
    /// always works, and the `camera_lost` alarm has told the station.
    #[default]
    Card,
    /// Cards are refused with `face_unavailable` until a camera works again.
    Refuse,
}

/// A weekly time range in site local time. When `end` is not after `start`
/// the range runs past midnight into the next day (`22:00-06:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct WeeklyHours {
    /// Bit 0 = Monday … bit 6 = Sunday: the days the range starts on.
    pub days: u8,
    /// Minutes after local midnight.
    pub start: u16,
    pub end: u16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl WeeklyHours {
    /// Whether `minute` (after local midnight) of `weekday` (0 = Monday) falls in the range.
    pub fn contains(&self, weekday: u32, minute: u16) -> bool {
        let day = |d: u32| self.days & (1 << (d % 7)) != 0;
        if self.start < self.end {
            return day(weekday) && self.start <= minute && minute < self.end;
        }
        // Past midnight: the evening part on a listed day, the morning part the day after.
        (day(weekday) && minute >= self.start) || (day(weekday + 6) && minute < self.end)
    }
}

fn parse_time(s: &str) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time HH:MM (00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl std::str::FromStr for WeeklyHours {
    type Err = String;
    fn from_str(s: &str) -> Result<WeeklyHours, String> {
        let s = s.trim().to_ascii_lowercase();
        let Some((days, times)) = s.rsplit_once(' ') else {
            return Err(format!(
                "expected DAYS HH:MM-HH:MM, e.g. \"mon-fri 22:00-06:00\", got {s:?}"
            ));
        };
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("expected a time range HH:MM-HH:MM, got {times:?}"))?;
        let (start, end) = (parse_time(start)?, parse_time(end)?);
        if start == end {
            return Err(format!(
                "{times:?} is empty; use 00:00-24:00 for the whole day"
            ));
        }
        if start == 24 * 60 {
            return Err("a range cannot start at 24:00".into());
        }
        Ok(WeeklyHours {
            days: crate::units::parse_days(days.trim())?,
            start,
            end,
        })
    }
}

impl TryFrom<String> for WeeklyHours {
    type Error = String;
    fn try_from(s: String) -> Result<WeeklyHours, String> {
        s.parse()
    }
}

impl From<WeeklyHours> for String {
    fn from(h: WeeklyHours) -> String {
        h.to_string()
    }
}

impl fmt::Display for WeeklyHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = (0..7)
            .filter(|d| self.days & (1 << d) != 0)
            .map(|d| DAYS[d])
            .collect();
        let days = if self.days == 0x7f {
            "daily".to_string()
        } else {
            days.join(",")
        };
        let t = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{days} {}-{}", t(self.start), t(self.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> WeeklyHours {
        s.parse().unwrap()
    }

    #[test]
    fn hours_parse_days_ranges_and_round_trip() {
        let night = h("mon-fri 22:00-06:00");
        assert_eq!(night.days, 0b0011111);
        assert_eq!((night.start, night.end), (22 * 60, 6 * 60));
        assert_eq!(night.to_string(), "mon,tue,wed,thu,fri 22:00-06:00");
        assert_eq!(h(&night.to_string()), night);
        assert_eq!(h("fri-mon 00:00-24:00").days, 0b1110001);
        assert_eq!(h("Daily 07:30-09:00").to_string(), "daily 07:30-09:00");
        for bad in [
            "22:00-06:00",
            "mon-fry 22:00-06:00",
            "mon 25:00-06:00",
            "mon 08:00-08:00",
            "mon 08:00",
            "mon 24:00-06:00",
        ] {
            assert!(bad.parse::<WeeklyHours>().is_err(), "{bad}");
        }
    }

    #[test]
    fn gate_config_names_bad_hours_and_hours_without_two_factor() {
        use crate::config::{Config, DEMO_CONFIG};
        let with = |extra: &str| {
            DEMO_CONFIG.replacen(
                "paired_with = \"east-out\"\n",
                &format!("paired_with = \"east-out\"\n{extra}\n"),
                1,
            )
        };
        let ok = Config::parse(
            &with("two_factor = \"card+face\"\ntwo_factor_hours = [\"mon-fri 22:00-06:00\"]"),
            "g.toml",
        )
        .unwrap();
        assert_eq!(ok.gates[0].two_factor, TwoFactor::CardAndFace);
        assert_eq!(ok.gates[0].two_factor_hours.len(), 1);
        assert_eq!(ok.gates[0].face_wait_s, 10);
        let err = Config::parse(
            &with("two_factor = \"card+face\"\ntwo_factor_hours = [\"nights\"]"),
            "g.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("gates[0].two_factor_hours"), "{err}");
        let err = Config::parse(
            &with("two_factor_hours = [\"daily 22:00-06:00\"]"),
            "g.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("gates[0].two_factor_hours") && err.contains("card+face"),
            "{err}"
        );
        let err = Config::parse(&with("two_factor = \"face\""), "g.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gates[0].two_factor"), "{err}");
    }

    #[test]
    fn night_hours_run_past_midnight_into_the_next_day() {
        let night = h("mon-fri 22:00-06:00");
        // Monday 23:00 and Tuesday 05:59: in. Monday 05:00 (Sunday night): out.
        assert!(night.contains(0, 23 * 60));
        assert!(night.contains(1, 5 * 60 + 59));
        assert!(!night.contains(0, 5 * 60));
        assert!(!night.contains(1, 6 * 60));
        // Saturday 03:00 belongs to Friday night.
        assert!(night.contains(5, 3 * 60));
        assert!(!night.contains(5, 23 * 60));
        let day = h("sat,sun 00:00-24:00");
        assert!(day.contains(6, 0) && day.contains(6, 1439) && !day.contains(0, 0));
    }
}
