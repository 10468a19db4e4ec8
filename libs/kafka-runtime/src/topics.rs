//! Creating the topics a service needs.

use std::time::Duration;

use psg_config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::{Error, Result, client};

/// A topic and how to create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    /// `cleanup.policy=compact` (tables keyed by id, such as `resources`).
    pub compacted: bool,
}

impl TopicSpec {
    pub fn stream(name: impl Into<String>) -> Self {
        Self { name: name.into(), compacted: false }
    }

    pub fn table(name: impl Into<String>) -> Self {
        Self { name: name.into(), compacted: true }
    }
}

/// Creates every topic of `specs` that does not exist yet.
pub async fn ensure(cfg: &KafkaConfig, specs: &[TopicSpec]) -> Result<()> {
    if specs.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> =
        client::base(cfg)?.create().map_err(|e| Error::kafka("creating admin client", e))?;
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let t = NewTopic::new(&s.name, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor));
            if s.compacted { t.set("cleanup.policy", "compact") } else { t }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        admin.create_topics(new_topics.iter(), &opts).await.map_err(|e| Error::kafka("creating topics", e))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, partitions = cfg.partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::kafka(format!("creating topic {name}"), rdkafka::error::KafkaError::AdminOp(code)));
            }
        }
    }
    Ok(())
}
