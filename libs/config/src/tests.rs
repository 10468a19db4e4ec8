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
    assert_eq!(
        redact_url("postgres://u@h/db?sslmode=require&password=secret"),
        "postgres://u@h/db?sslmode=require&password=***"
    );
    assert_eq!(redact_url("postgres://u:secret@h1:5432,h2:5432/db"), "<unparseable url>");
}

#[test]
fn secret_properties_are_recognised() {
    for key in [
        "sasl.password",
        "sasl.username",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.key.location",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "SASL.PASSWORD",
    ] {
        assert!(is_secret_property(key), "{key}");
    }
    for key in ["security.protocol", "sasl.mechanism", "ssl.ca.location", "ssl.certificate.location", "client.id"] {
        assert!(!is_secret_property(key), "{key}");
    }
}

#[test]
fn database_tls_keys_become_url_parameters() {
    Jail::expect_with(|jail| {
        jail.create_file("ca.pem", "x")?;
        let ca = jail.directory().join("ca.pem");
        jail.set_env("PSG_DATABASE__SSL_MODE", "verify-full");
        jail.set_env("PSG_DATABASE__CA_FILE", ca.display().to_string());
        let overrides = Overrides {
            database_url: Some(Secret::new("postgres://u:pw@db/psg?application_name=x")),
            ..Overrides::default()
        };
        let c = load(None, &overrides).map_err(|e| e.to_string())?;
        assert_eq!(c.database.ssl_mode, Some(SslMode::VerifyFull));
        let url = c.database.url.as_ref().map(|u| u.expose().to_owned()).unwrap_or_default();
        assert_eq!(
            url,
            format!("postgres://u:pw@db/psg?application_name=x&sslmode=verify-full&sslrootcert={}", ca.display())
        );
        // idempotent: the same parameters already in the URL are not added twice
        assert_eq!(c.database.connection_url().map(|u| u.expose().to_owned()), Some(url));
        Ok(())
    });
}

#[test]
fn database_tls_contradictions_are_rejected() {
    let mut c = Config::default();
    c.database.url = Some(Secret::new("postgres://u:hunter2@db/psg?sslmode=require"));
    c.database.ssl_mode = Some(SslMode::Disable);
    c.database.client_cert = Some("/nonexistent/client.pem".into());
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("database.ssl-mode (disable) contradicts sslmode=require"), "{err}");
    assert!(err.contains("client-key go together"), "{err}");
    assert!(err.contains("/nonexistent/client.pem does not exist"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    c.database = DatabaseConfig { url: Some(Secret::new("postgres://db/psg?sslmode=verify")), ..Default::default() };
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("'verify' is not an sslmode"), "{err}");
}

/// Readers of data_flows bound the time they scan by a window's reach.
#[test]
fn windows_reach_at_most_a_day() {
    let mut c = Config::default();
    c.correlate.window_secs = 86_400 - c.correlate.match_tolerance_secs;
    c.validate().unwrap();
    c.correlate.window_secs += 1;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("correlate.window-secs + correlate.match-tolerance-secs (85801 + 600 s)"), "{err}");
}

#[test]
fn kafka_secrets_from_the_environment() {
    Jail::expect_with(|jail| {
        jail.set_env("PSG_KAFKA__PROPERTIES__SASL_PASSWORD", "12345");
        jail.set_env("PSG_KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL");
        let c = load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(c.kafka.properties["sasl.password"].expose(), "12345", "a numeric password stays a string");
        assert_eq!(c.kafka.properties["security.protocol"].expose(), "SASL_SSL");
        assert!(!format!("{c:?}").contains("12345"));
        Ok(())
    });
}

#[test]
fn the_shipped_example_is_the_defaults() {
    let example: Config = Figment::from(Toml::string(include_str!("../../../deploy/config.example.toml")))
        .extract()
        .expect("deploy/config.example.toml parses");
    let defaults = Config::default();
    assert_eq!(format!("{example:?}"), format!("{defaults:?}"), "deploy/config.example.toml must list the defaults");
}

#[test]
fn grc_credentials_from_the_environment_never_print() {
    Jail::expect_with(|jail| {
        jail.set_env("PSG_GRC_VANTA_CLIENT_ID", "id-1");
        jail.set_env("PSG_GRC_VANTA_CLIENT_SECRET", "s3cret-vanta");
        jail.set_env("PSG_GRC_VANTA_RESOURCE_ID", "res-1");
        jail.set_env("PSG_GRC_DRATA_API_KEY", "s3cret-drata");
        jail.set_env("PSG_GRC_DRATA_CONNECTION_ID", "42");
        jail.set_env("PSG_GRC_DRATA_CONTROL_IDS", "[1, 2]");
        jail.set_env("PSG_GRC__SECUREFRAME__API_SECRET", "s3cret-sf");
        let c = load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(c.grc.vanta.client_id.as_ref().map(Secret::expose), Some("id-1"));
        assert_eq!(c.grc.vanta.resource_id.as_deref(), Some("res-1"));
        assert_eq!(c.grc.drata.api_key.as_ref().map(Secret::expose), Some("s3cret-drata"));
        assert_eq!(c.grc.drata.control_ids, vec![1, 2]);
        assert_eq!(c.grc.drata.connection_id.as_deref(), Some("42"));
        assert_eq!(c.grc.secureframe.api_secret.as_ref().map(Secret::expose), Some("s3cret-sf"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        Ok(())
    });
}

#[test]
fn spans_are_written_as_people_write_them() {
    let parse = |s: &str| s.parse::<Span>().map(|d| d.as_duration().as_secs());
    assert_eq!(parse("90s"), Ok(90));
    assert_eq!(parse("15m"), Ok(900));
    assert_eq!(parse("24h"), Ok(86_400));
    assert_eq!(parse("1h30m"), Ok(5_400));
    assert_eq!(parse("2d"), Ok(172_800));
    assert_eq!(parse("600"), Ok(600));
    for bad in ["", "m", "15x", "1.5h", "h15", "-5m", "15m3"] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    assert!(parse("5w").unwrap_err().to_string().contains("15m"), "the message shows how to write one");
    assert_eq!(Span::from_secs(5_400).to_string(), "1h30m");
    assert_eq!(Span::from_secs(86_400).to_string(), "1d");
}

#[test]
fn grc_interval_and_full_every_from_file_and_environment_are_validated() {
    Jail::expect_with(|jail| {
        let c = load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!((c.grc.interval, c.grc.full_every), (Span::from_secs(900), Span::from_secs(86_400)));

        jail.create_file("psg.toml", "[grc]\ninterval = \"5m\"\nfull-every = \"12h\"\n")?;
        let c = load(Some("psg.toml"), &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!((c.grc.interval, c.grc.full_every), (Span::from_secs(300), Span::from_secs(43_200)));

        jail.set_env("PSG_GRC__INTERVAL", "30s");
        jail.set_env("PSG_GRC__FULL_EVERY", "3600");
        let c = load(Some("psg.toml"), &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!((c.grc.interval, c.grc.full_every), (Span::from_secs(30), Span::from_secs(3_600)));

        jail.set_env("PSG_GRC__FULL_EVERY", "10s");
        let err = load(Some("psg.toml"), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("grc.full-every (10s) must not be shorter than grc.interval (30s)"), "{err}");

        jail.set_env("PSG_GRC__INTERVAL", "0s");
        let err = load(Some("psg.toml"), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("grc.interval must be at least 1s"), "{err}");

        jail.set_env("PSG_GRC__INTERVAL", "fortnightly");
        let err = load(Some("psg.toml"), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("'fortnightly' is not a length of time"), "{err}");
        Ok(())
    });
}
