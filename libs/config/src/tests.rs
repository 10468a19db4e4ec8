// figment::Jail closures return figment::Error, which is large; that is its API.
#![allow(clippy::result_large_err)]

use figment::providers::{Format, Toml};
use figment::{Figment, Jail};

use super::*;

fn load(jail_file: Option<&str>, overrides: &Overrides) -> Result<Config> {
    Config::load(jail_file.map(Path::new), overrides)
}

#[test]
fn defaults_are_valid() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(c.topics.flowlogs_raw, "flowlogs.raw");
    assert_eq!(c.classify.lookback_days, 90);
}

#[test]
fn layers_apply_in_order() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "psg.toml",
            r#"
            [kafka]
            brokers = "file:9092"
            batch-size = 10
            [kafka.properties]
            "security.protocol" = "SASL_SSL"
            "sasl.password" = "hunter2"
            "#,
        )?;
        jail.set_env("PSG_KAFKA__BATCH_SIZE", "20");
        jail.set_env("PSG_CORRELATE__WINDOW_SECS", "30");
        jail.set_env("PSG_CONFIG", "psg.toml");
        let overrides = Overrides {
            brokers: Some("flag:9092".into()),
            kafka_properties: vec![("client.id".into(), "x".into())],
            ..Overrides::default()
        };
        let c = load(Some("psg.toml"), &overrides).map_err(|e| e.to_string())?;
        assert_eq!(c.kafka.brokers.as_deref(), Some("flag:9092"));
        assert_eq!(c.kafka.batch_size, 20);
        assert_eq!(c.correlate.window_secs, 30);
        assert_eq!(c.kafka.properties["security.protocol"].expose(), "SASL_SSL");
        assert_eq!(c.kafka.properties["client.id"].expose(), "x");
        // secrets never print
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        Ok(())
    });
}

#[test]
fn unknown_keys_are_named() {
    Jail::expect_with(|jail| {
        jail.create_file("psg.toml", "[kafka]\nbatchsize = 10\n")?;
        let err = load(Some("psg.toml"), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("batchsize"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("PSG_KAFKA__BROKER", "x");
        let err = load(None, &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("broker"), "{err}");
        Ok(())
    });
}

#[test]
fn missing_file_is_an_error() {
    let err = load(Some("/nonexistent/psg.toml"), &Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn contradictions_are_rejected() {
    let mut c = Config::default();
    c.kafka.batch_size = 0;
    c.topics.scope_alerts = c.topics.scope_decisions.clone();
    c.database.url = Some(Secret::new("mysql://root:pw@x/db"));
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("batch-size"), "{err}");
    assert!(err.contains("two different streams"), "{err}");
    assert!(err.contains("postgres://"), "{err}");
    assert!(!err.contains("pw@"), "{err}");
}

#[test]
fn urls_are_redacted() {
    assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
    assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
}

#[test]
fn the_shipped_example_is_the_defaults() {
    let example: Config = Figment::from(Toml::string(include_str!("../../../deploy/config.example.toml")))
        .extract()
        .expect("deploy/config.example.toml parses");
    let defaults = Config::default();
    assert_eq!(format!("{example:?}"), format!("{defaults:?}"), "deploy/config.example.toml must list the defaults");
}
