//! librdkafka client configuration for consumers, producers and admin clients.

use psg_config::{KafkaConfig, is_secret_property};
use rdkafka::ClientConfig;

use crate::{Error, Result};

/// The base configuration every client gets: brokers plus every
/// pass-through property (TLS, SASL, timeouts, ...).
pub fn base(cfg: &KafkaConfig) -> Result<ClientConfig> {
    let brokers = cfg.brokers.as_deref().filter(|b| !b.trim().is_empty()).ok_or(Error::NoBrokers)?;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in &cfg.properties {
        c.set(k, v.expose());
    }
    Ok(c)
}

/// A consumer in group `group`: offsets stored by us, committed by librdkafka.
pub fn consumer(cfg: &KafkaConfig, group: &str) -> Result<ClientConfig> {
    let mut c = base(cfg)?;
    set_default(&mut c, cfg, "group.id", group);
    // Static membership: a restarted instance takes its place (and its
    // partitions) back without a rebalance. Unique per group, so the four
    // services of `run` may share it.
    if let Some(id) = &cfg.instance_id {
        c.set("group.instance.id", id);
    }
    set_default(&mut c, cfg, "enable.auto.commit", "true");
    set_default(&mut c, cfg, "auto.commit.interval.ms", "1000");
    set_default(&mut c, cfg, "auto.offset.reset", "earliest");
    // A member that dies without leaving is replaced within 10 s; a static
    // member is given 30 s to come back (and keep its partitions) first.
    let session = if cfg.instance_id.is_some() { "30000" } else { "10000" };
    set_default(&mut c, cfg, "session.timeout.ms", session);
    set_default(&mut c, cfg, "heartbeat.interval.ms", "2000");
    // Detection latency: a broker that holds a fetch for its whole wait when
    // nothing is there answers new data only then (librdkafka's 500 ms
    // default costs up to half a second per hop).
    set_default(&mut c, cfg, "fetch.wait.max.ms", "50");
    // Never overridable: storing offsets ourselves is what makes outputs durable first.
    c.set("enable.auto.offset.store", "false");
    // Never overridable: eager rebalancing. Every rebalance revokes all of an
    // instance's partitions and they are read again from their committed
    // offsets, which is what lets a stateful processor (correlate's windows)
    // drop its state on revocation and count nothing twice.
    c.set("partition.assignment.strategy", "range,roundrobin");
    c.set("enable.partition.eof", "false");
    warnings_at_least(&mut c);
    Ok(c)
}

/// librdkafka's log level follows the logger's at creation; the runner
/// reads its warnings (offset resets: records lost) whatever is logged.
fn warnings_at_least(c: &mut ClientConfig) {
    use rdkafka::config::RDKafkaLogLevel;
    if (c.log_level as i32) < (RDKafkaLogLevel::Warning as i32) {
        c.set_log_level(RDKafkaLogLevel::Warning);
    }
}

/// A consumer that reads whole topics by assignment (no group membership,
/// no commits).
pub fn table_consumer(cfg: &KafkaConfig, group: &str) -> Result<ClientConfig> {
    let mut c = base(cfg)?;
    // librdkafka requires a group id for a consumer even when it only assigns.
    c.set("group.id", format!("{group}-table"));
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    c.set("auto.offset.reset", "earliest");
    c.set("enable.partition.eof", "false");
    set_default(&mut c, cfg, "fetch.wait.max.ms", "50");
    warnings_at_least(&mut c);
    Ok(c)
}

/// An idempotent producer: acks from all in-sync replicas, no duplicates on retry.
pub fn producer(cfg: &KafkaConfig) -> Result<ClientConfig> {
    let mut c = base(cfg)?;
    set_default(&mut c, cfg, "enable.idempotence", "true");
    set_default(&mut c, cfg, "acks", "all");
    set_default(&mut c, cfg, "linger.ms", "5");
    set_default(&mut c, cfg, "message.timeout.ms", "60000");
    Ok(c)
}

fn set_default(c: &mut ClientConfig, cfg: &KafkaConfig, key: &str, value: &str) {
    if !cfg.properties.contains_key(key) {
        c.set(key, value);
    }
}

/// The configuration with secret values masked, for logs.
pub fn describe(c: &ClientConfig) -> String {
    let mut pairs: Vec<String> = c
        .config_map()
        .iter()
        .map(|(k, v)| if is_secret_property(k) { format!("{k}=***") } else { format!("{k}={v}") })
        .collect();
    pairs.sort();
    pairs.join(" ")
}

#[cfg(test)]
mod tests {
    use psg_config::Secret;

    use super::*;

    #[test]
    fn offsets_are_never_auto_stored_and_secrets_never_described() {
        let mut cfg = KafkaConfig { brokers: Some("b:9092".into()), ..KafkaConfig::default() };
        cfg.properties.insert("enable.auto.offset.store".into(), Secret::new("true"));
        cfg.properties.insert("sasl.password".into(), Secret::new("hunter2"));
        cfg.properties.insert("auto.offset.reset".into(), Secret::new("latest"));
        let c = consumer(&cfg, "g").unwrap();
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("auto.offset.reset"), Some("latest"), "user properties win where allowed");
        let d = describe(&c);
        assert!(d.contains("sasl.password=***"), "{d}");
        assert!(!d.contains("hunter2"), "{d}");
    }

    #[test]
    fn tls_and_sasl_scram_are_built_in() {
        use rdkafka::producer::BaseProducer;
        let mut cfg = KafkaConfig { brokers: Some("127.0.0.1:1".into()), ..KafkaConfig::default() };
        for (k, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "psg"),
            ("sasl.password", "secret"),
        ] {
            cfg.properties.insert(k.into(), Secret::new(v));
        }
        let created: Result<BaseProducer, _> = producer(&cfg).unwrap().create();
        assert!(created.is_ok(), "librdkafka lacks TLS or SASL/SCRAM: {:?}", created.err());
    }

    #[test]
    fn no_brokers_is_a_clear_error() {
        let err = base(&KafkaConfig::default()).unwrap_err().to_string();
        assert!(err.contains("--brokers"), "{err}");
    }
}
