//! The contract between a service and the binary.
//!
//! Each service (ingest, correlate, classify, evidence) states through
//! [`Service`] its name, its section of the configuration, the topics it
//! reads and writes ([`Topics`], derived from the configuration's topic
//! names), and builds itself from the configuration and the database. The
//! binary, the batch runs and the tests start any service the same way:
//! topics to create, consumer options and subscriptions all come from
//! [`Service::topics`], so a topic is named in one place — the
//! configuration — and listed by the one service that uses it.

use std::future::Future;

use psg_config::Config;
use psg_kafka_runtime::runner::RunnerOptions;
use psg_kafka_runtime::topics::TopicSpec;
use psg_kafka_runtime::{CancellationToken, Processor};
use psg_store::Store;
use psg_telemetry::Health;

/// What a service reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    /// Read as streams: each instance of the consumer group gets its share
    /// of the partitions.
    pub streams: Vec<String>,
    /// Read whole by every instance before any stream message (compacted
    /// topics, such as `resources`).
    pub tables: Vec<String>,
    /// Written, each as a stream or a compacted table.
    pub outputs: Vec<TopicSpec>,
    /// Where its bad input goes, with the reason.
    pub dead_letter: String,
}

impl Topics {
    /// Every topic the service needs to exist: inputs, outputs and dead
    /// letters; tables and compacted outputs compacted.
    pub fn specs(&self) -> Vec<TopicSpec> {
        let mut specs: Vec<TopicSpec> = self.streams.iter().map(TopicSpec::stream).collect();
        specs.extend(self.tables.iter().map(TopicSpec::table));
        specs.extend(self.outputs.iter().cloned());
        specs.push(TopicSpec::stream(&self.dead_letter));
        specs
    }

    /// The names of the topics it writes, dead letters included.
    pub fn written(&self) -> Vec<String> {
        self.outputs.iter().map(|s| s.name.clone()).chain([self.dead_letter.clone()]).collect()
    }
}

/// Why a service could not be built: a setting (exit code 2: fix the
/// configuration) or the state it restores (exit code 1).
pub trait BuildFailure: std::error::Error + Send + Sync + 'static {
    /// Whether the configuration is at fault.
    fn is_setting(&self) -> bool;
}

impl BuildFailure for std::convert::Infallible {
    fn is_setting(&self) -> bool {
        match *self {}
    }
}

/// A service: a [`Processor`] that knows its topics and builds itself.
pub trait Service: Processor + Sized {
    /// Its name: the subcommand, the consumer group's suffix, the `service`
    /// label of its metrics.
    const NAME: &'static str;
    /// Its section of the configuration file (`[ingest]`, `[correlate]`, ...).
    const CONFIG_SECTION: &'static str;
    /// Why it could not be built (a setting, a key, the state it restores).
    type Error: BuildFailure;

    /// Builds it from `cfg` and, if there is one, the database (restoring
    /// what it keeps there).
    fn build(cfg: &Config, store: Option<Store>) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// What it reads and writes, as built.
    fn topics(&self) -> Topics;

    /// Runs once its topics exist, before its first message: what it must
    /// learn from the brokers first (ingest: the partition count of its
    /// output topic). Nothing by default.
    fn prepare(
        &mut self,
        cfg: &Config,
        stop: &CancellationToken,
    ) -> impl Future<Output = psg_kafka_runtime::Result<()>> + Send {
        let _ = (cfg, stop);
        async { Ok(()) }
    }

    /// The runner's options for it: its topics, its name, `health`.
    fn runner_options(&self, cfg: &Config, health: Health) -> RunnerOptions {
        let t = self.topics();
        RunnerOptions {
            stream_topics: t.streams,
            table_topics: t.tables,
            ..RunnerOptions::new(&cfg.kafka, Self::NAME, &t.dead_letter, health)
        }
    }
}

/// Every topic the services with `topics` need, each once (a topic one
/// service writes as compacted is compacted for all).
pub fn topic_specs(topics: &[Topics]) -> Vec<TopicSpec> {
    let mut specs: Vec<TopicSpec> = Vec::new();
    for spec in topics.iter().flat_map(Topics::specs) {
        match specs.iter_mut().find(|s| s.name == spec.name) {
            Some(s) => s.compacted |= spec.compacted,
            None => specs.push(spec),
        }
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_every_topic_once_compacted_where_any_service_compacts_it() {
        let ingest = Topics {
            streams: vec!["flowlogs.raw".into()],
            tables: vec![],
            outputs: vec![TopicSpec::stream("flows.normalized"), TopicSpec::table("resources")],
            dead_letter: "ingest.dlq".into(),
        };
        let correlate = Topics {
            streams: vec!["flows.normalized".into()],
            tables: vec!["resources".into()],
            outputs: vec![TopicSpec::stream("flows.edges")],
            dead_letter: "correlate.dlq".into(),
        };
        let specs = topic_specs(&[ingest.clone(), correlate]);
        let names: Vec<(&str, bool)> = specs.iter().map(|s| (s.name.as_str(), s.compacted)).collect();
        assert_eq!(
            names,
            vec![
                ("correlate.dlq", false),
                ("flowlogs.raw", false),
                ("flows.edges", false),
                ("flows.normalized", false),
                ("ingest.dlq", false),
                ("resources", true),
            ]
        );
        assert_eq!(ingest.written(), vec!["flows.normalized", "resources", "ingest.dlq"]);
    }
}
