//! Small types for the domain words every module shares.
//!
//! Parsing and validation happen once, where a value enters the system; after
//! that a `GateId` is known to be well formed and nobody re-checks it.

use std::fmt;

use serde::{Deserialize, Serialize};

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
        return Err(format!("expected 1..=64 characters, got {} in {s:?}", s.len()));
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
