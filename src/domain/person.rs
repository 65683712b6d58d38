//! What a resident is to the compound (their role) and whether they may come
//! in (their status): one type each for the register in the database, the
//! in-memory register the gate decides on, the import and the console.

use std::fmt;

use serde::{Deserialize, Serialize};

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

/// A resident's role in the compound. Access groups can admit a whole role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResidentRole {
    Owner,
    Family,
    Tenant,
    Staff,
    Guard,
}

impl ResidentRole {
    pub const ALL: [ResidentRole; 5] = [
        ResidentRole::Owner,
        ResidentRole::Family,
        ResidentRole::Tenant,
        ResidentRole::Staff,
        ResidentRole::Guard,
    ];

    /// The value stored in `person.role` and `access_group_member.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResidentRole::Owner => "owner",
            ResidentRole::Family => "family",
            ResidentRole::Tenant => "tenant",
            ResidentRole::Staff => "staff",
            ResidentRole::Guard => "guard",
        }
    }
}

impl std::str::FromStr for ResidentRole {
    type Err = String;
    /// English or the words a property office uses (业主, 家属, 租户, 员工, 保安).
    fn from_str(s: &str) -> Result<ResidentRole, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "owner" | "业主" => ResidentRole::Owner,
            "family" | "家属" | "家庭成员" => ResidentRole::Family,
            "tenant" | "租户" | "租客" => ResidentRole::Tenant,
            "staff" | "员工" | "物业" => ResidentRole::Staff,
            "guard" | "保安" | "门卫" => ResidentRole::Guard,
            _ => {
                return Err(format!(
                    "unknown role {:?}; expected one of {}",
                    s.trim(),
                    ResidentRole::ALL.map(|r| r.as_str()).join(", ")
                ))
            }
        })
    }
}

impl fmt::Display for ResidentRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a resident may come in at all (before groups and hours).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonStatus {
    Active,
    Suspended,
    MovedOut,
}

impl PersonStatus {
    /// The value stored in `person.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonStatus::Active => "active",
            PersonStatus::Suspended => "suspended",
            PersonStatus::MovedOut => "moved_out",
        }
    }
}

impl std::str::FromStr for PersonStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<PersonStatus, String> {
        Ok(match s.trim() {
            "active" => PersonStatus::Active,
            "suspended" => PersonStatus::Suspended,
            "moved_out" | "moved-out" => PersonStatus::MovedOut,
            other => {
                return Err(format!(
                    "unknown status {other:?}; expected active, suspended or moved_out"
                ))
            }
        })
    }
}

impl fmt::Display for PersonStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_accept_english_and_property_office_words() {
        assert_eq!(
            "tenant".parse::<ResidentRole>().unwrap(),
            ResidentRole::Tenant
        );
        assert_eq!(
            "Owner".parse::<ResidentRole>().unwrap(),
            ResidentRole::Owner
        );
        assert_eq!(
            "租户".parse::<ResidentRole>().unwrap(),
            ResidentRole::Tenant
        );
        assert_eq!("保安".parse::<ResidentRole>().unwrap(), ResidentRole::Guard);
        let e = "landlord".parse::<ResidentRole>().unwrap_err();
        assert!(e.contains("unknown role \"landlord\""), "{e}");
    }

    #[test]
    fn roles_and_statuses_round_trip_through_their_stored_words() {
        for r in ResidentRole::ALL {
            assert_eq!(r.as_str().parse::<ResidentRole>(), Ok(r));
        }
        for s in [
            PersonStatus::Active,
            PersonStatus::Suspended,
            PersonStatus::MovedOut,
        ] {
            assert_eq!(s.as_str().parse::<PersonStatus>(), Ok(s));
        }
    }

    #[test]
    fn names_are_trimmed_and_must_be_printable() {
        assert_eq!(validate_name("  张三 ").unwrap(), "张三");
        assert!(validate_name("   ").is_err());
        assert!(validate_name("张\u{7}三").is_err());
        assert!(validate_name(&"名".repeat(65)).is_err());
    }
}
