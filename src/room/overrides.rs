//! Runtime overrides an operator sets through the admin API: applied over the file's values at
//! once, kept across reloads and restarts, shown beside the file's value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Policy, Settings};

/// One room's overrides; `None` leaves the file's value in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_users: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admit_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "policy_name")]
    pub queue: Option<Policy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `queue` or `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<super::Mode>,
    /// Scheduled events the operator started or ended by hand, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, EventMove>,
}

/// An operator's "start now" or "end now" for one event (unix milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMove {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at_ms: Option<u64>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }

    /// The file's settings with these overrides applied.
    pub fn apply(&self, file: &Settings) -> Settings {
        let mut s = file.clone();
        if let Some(p) = self.paused {
            s.paused = p;
        }
        if let Some(n) = self.active_users {
            s.active_users = Some(n);
        }
        if let Some(n) = self.admit_per_minute {
            s.admit_per_minute = Some(n);
        }
        if let Some(q) = self.queue {
            s.policy = q;
        }
        if let Some(m) = self.mode {
            s.mode = m;
        }
        s
    }
}

mod policy_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Policy;

    pub(super) fn serialize<S: Serializer>(p: &Option<Policy>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_str(p.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Policy>, D::Error> {
        let name: Option<String> = Option::deserialize(d)?;
        name.map(|n| {
            Policy::parse(&n)
                .ok_or_else(|| serde::de::Error::custom(format!("{n:?} is not a queue policy")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_over_the_file_and_round_trips() {
        let o = Overrides {
            paused: Some(true),
            active_users: Some(7),
            queue: Some(Policy::Lottery),
            ..Overrides::default()
        };
        let s = o.apply(&Settings::default());
        assert!(s.paused);
        assert_eq!(s.active_users, Some(7));
        assert_eq!(s.policy, Policy::Lottery);
        let text = serde_json::to_string(&o).unwrap();
        assert_eq!(
            text,
            r#"{"paused":true,"active_users":7,"queue":"lottery"}"#
        );
        assert_eq!(serde_json::from_str::<Overrides>(&text).unwrap(), o);
        assert!(Overrides::default().is_empty());
    }
}
