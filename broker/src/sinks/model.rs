//! A sink's stored definition and state.

use ductstream_sinks::runtime::TopicSelector;
use ductstream_sinks::Destination;
use serde::{Deserialize, Serialize};

use crate::{BrokerError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkState {
    Running,
    Paused,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkDef {
    pub id: String,
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regex that whole topic names must match.
    #[serde(default)]
    pub topic_pattern: String,
    pub destination: Destination,
    pub state: SinkState,
    #[serde(default)]
    pub last_error: String,
    /// The flow whose destination this is; empty for a sink of its own.
    #[serde(default)]
    pub flow_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl SinkDef {
    /// The consumer group the sink commits as.
    pub fn group(&self) -> String {
        group_of(&self.id)
    }

    /// Checks what can be checked without connecting (the destination's options included).
    pub fn validate(&self) -> Result<()> {
        // A flow's sink is named <flow id>.<destination name>: room for both.
        crate::documents::check_id("sink", &self.id, 200)?;
        if self.topics.is_empty() && self.topic_pattern.is_empty() {
            return Err(BrokerError::InvalidArgument(format!("sink {:?}: name topics or a topic_pattern", self.id)));
        }
        if let Some(bad) = self.topics.iter().find(|t| t.is_empty()) {
            return Err(BrokerError::InvalidArgument(format!("sink {:?}: empty topic name {bad:?}", self.id)));
        }
        self.selector()?;
        ductstream_sinks::open_sink(&self.destination, &self.id).map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
        Ok(())
    }

    /// The topics the sink reads: its names, and the pattern anchored to whole names.
    pub fn selector(&self) -> Result<TopicSelector> {
        let pattern = if self.topic_pattern.is_empty() {
            None
        } else {
            let anchored = regex::Regex::new(&format!("^(?:{})$", self.topic_pattern))
                .map_err(|e| BrokerError::InvalidArgument(format!("sink {:?}: topic_pattern: {e}", self.id)))?;
            Some(anchored)
        };
        Ok(TopicSelector { names: self.topics.clone(), pattern })
    }

    /// The sink as the API shows it: secrets hidden.
    pub fn redacted(mut self) -> SinkDef {
        ductstream_sinks::hide_secrets(&mut self.destination.options);
        self
    }
}

pub fn group_of(id: &str) -> String {
    format!("ductstream-sink-{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: &str, options: &[(&str, &str)]) -> SinkDef {
        SinkDef {
            id: "s1".into(),
            topics: vec!["orders".into()],
            topic_pattern: String::new(),
            destination: Destination {
                name: "d".into(),
                kind: kind.into(),
                options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            },
            state: SinkState::Running,
            last_error: String::new(),
            flow_id: String::new(),
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn validation_names_what_is_wrong() {
        assert!(def("http", &[("url", "http://127.0.0.1:1/x")]).validate().is_ok());
        let unknown = def("ftp", &[]).validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(unknown.contains("unknown destination type \"ftp\""), "{unknown}");
        let typo = def("http", &[("url", "http://h/x"), ("max_retry", "3")]).validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(typo.contains("max_retry"), "{typo}");
        let hidden = def("http", &[("url", "http://h/x"), ("signing_secret", "whsec_abc")]).redacted();
        assert_eq!(hidden.destination.options["signing_secret"], "***");
    }
}
