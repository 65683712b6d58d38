//! The MQTT topic tree, versioned so the station can run old and new gateways
//! side by side:
//!
//! ```text
//! gatehouse/v1/{site}/{gateway}/event/{kind}        gateway → station, QoS 1 (kind: access | alarm | device)
//! gatehouse/v1/{site}/{gateway}/status              gateway → station, QoS 1, retained; last will "offline"
//! gatehouse/v1/{site}/{gateway}/snapshot/{event_id} gateway → station, QoS 1, JPEG bytes
//! gatehouse/v1/{site}/{gateway}/cmd/{name}          station → gateway, QoS 1, signed JSON; reply on the
//!                                                   MQTT v5 response topic with the correlation data
//! gatehouse-station/{client}/reply                  gateway → station: replies go only under this prefix
//! ```

use anyhow::{Context, Result};

use crate::domain::validate_slug;
use crate::store::events::EventKind;

pub const ROOT: &str = "gatehouse/v1";

/// Every command reply goes to a topic under this prefix (the station's
/// response topic); a command naming any other topic is refused.
pub const REPLY_PREFIX: &str = "gatehouse-station/";

/// The response topic of a station client.
pub fn reply_topic(client_id: &str) -> String {
    format!("{REPLY_PREFIX}{client_id}/reply")
}

/// Topic names for one gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    site: String,
    gateway: String,
    base: String,
}

impl Topics {
    /// Site and gateway ids go into topic levels, so they must be slugs
    /// (no `/`, `+`, `#`).
    pub fn new(site: &str, gateway: &str) -> Result<Topics> {
        validate_slug(site)
            .map_err(anyhow::Error::msg)
            .context("site id")?;
        validate_slug(gateway)
            .map_err(anyhow::Error::msg)
            .context("gateway id")?;
        Ok(Topics {
            site: site.to_string(),
            gateway: gateway.to_string(),
            base: format!("{ROOT}/{site}/{gateway}"),
        })
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    pub fn event(&self, kind: EventKind) -> String {
        format!("{}/event/{}", self.base, kind.as_str())
    }

    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    pub fn snapshot(&self, event_id: &str) -> String {
        format!("{}/snapshot/{event_id}", self.base)
    }

    pub fn cmd(&self, name: &str) -> String {
        format!("{}/cmd/{name}", self.base)
    }

    /// What the gateway subscribes to for commands.
    pub fn cmd_filter(&self) -> String {
        format!("{}/cmd/+", self.base)
    }

    /// The command name of a topic under `cmd/`, if it is one of ours.
    pub fn command_name<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic
            .strip_prefix(self.base.as_str())?
            .strip_prefix("/cmd/")
            .filter(|name| !name.is_empty() && !name.contains('/'))
    }
}

/// Every event of a site (`gateway = None`) or of one gateway, for `station watch`.
pub fn event_filter(site: &str, gateway: Option<&str>) -> String {
    format!("{ROOT}/{site}/{}/event/#", gateway.unwrap_or("+"))
}

/// Every status topic of a site or of one gateway.
pub fn status_filter(site: &str, gateway: Option<&str>) -> String {
    format!("{ROOT}/{site}/{}/status", gateway.unwrap_or("+"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_the_versioned_topic_tree() {
        let t = Topics::new("lotus-garden", "gw-east").unwrap();
        assert_eq!(
            t.event(EventKind::Access),
            "gatehouse/v1/lotus-garden/gw-east/event/access"
        );
        assert_eq!(t.status(), "gatehouse/v1/lotus-garden/gw-east/status");
        assert_eq!(
            t.snapshot("0192-ab"),
            "gatehouse/v1/lotus-garden/gw-east/snapshot/0192-ab"
        );
        assert_eq!(t.cmd_filter(), "gatehouse/v1/lotus-garden/gw-east/cmd/+");
        assert_eq!(t.command_name(&t.cmd("ping")), Some("ping"));
        assert_eq!(
            t.command_name("gatehouse/v1/lotus-garden/gw-west/cmd/ping"),
            None
        );
        assert_eq!(
            t.command_name("gatehouse/v1/lotus-garden/gw-east/cmd/"),
            None
        );
        assert_eq!(
            event_filter("lotus-garden", None),
            "gatehouse/v1/lotus-garden/+/event/#"
        );
    }

    #[test]
    fn refuses_ids_that_would_break_the_topic_tree() {
        assert!(Topics::new("a/b", "gw").is_err());
        assert!(Topics::new("site", "gw+").is_err());
        assert!(Topics::new("site", "#").is_err());
    }
}
