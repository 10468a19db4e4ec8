//! The embedded broker: librdkafka's in-process mock cluster. It speaks the
//! real Kafka protocol, so the services run unchanged against it; it keeps
//! everything in memory and only the newest ~38k messages of each partition,
//! so it is for `run`/`demo` without brokers and for tests, not production.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::topics::TopicSpec;
use crate::{Error, Result};

/// A running in-process broker; dropping it stops it.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker").field("bootstrap", &self.bootstrap_servers()).finish()
    }
}

impl EmbeddedBroker {
    /// Starts a cluster of `brokers` brokers on loopback.
    pub fn start(brokers: i32) -> Result<Self> {
        let cluster = MockCluster::new(brokers).map_err(|e| Error::kafka("starting the embedded broker", e))?;
        Ok(Self { cluster })
    }

    /// `host:port,...` to give clients.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates topics (the mock cluster does not implement the CreateTopics
    /// request that [`crate::topics::ensure`] sends). Existing ones are kept.
    pub fn create_topics(&self, specs: &[TopicSpec], partitions: i32) -> Result<()> {
        for spec in specs {
            match self.cluster.create_topic(&spec.name, partitions, 1) {
                Ok(()) | Err(KafkaError::MockCluster(RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err(e) => return Err(Error::kafka(format!("creating topic {} on the embedded broker", spec.name), e)),
            }
        }
        Ok(())
    }

    /// The mock cluster, for fault injection in tests.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}
