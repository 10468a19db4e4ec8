//! The binary's error: a usage or configuration problem (exit 2) or a
//! runtime failure (exit 1), with the library error that caused it kept as
//! its source, so the message printed shows the whole chain.

use std::error::Error;

/// Any library error kept as a cause.
pub(crate) type Cause = Box<dyn Error + Send + Sync + 'static>;

/// Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Runtime(String),
    /// A configuration error a library reported: its message is the cause's.
    #[error("{source}")]
    ConfigCause {
        #[source]
        source: Cause,
    },
    /// A runtime failure a library reported: its message is the cause's.
    #[error("{source}")]
    RuntimeCause {
        #[source]
        source: Cause,
    },
}

/// A runtime failure described by `e`'s message.
pub(crate) fn runtime(e: impl std::fmt::Display) -> CliError {
    CliError::Runtime(e.to_string())
}

impl CliError {
    /// A configuration error caused by `e`.
    pub(crate) fn config_from(e: impl Into<Cause>) -> Self {
        Self::ConfigCause { source: e.into() }
    }

    /// A runtime failure caused by `e`.
    pub(crate) fn runtime_from(e: impl Into<Cause>) -> Self {
        Self::RuntimeCause { source: e.into() }
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::ConfigCause { .. } => 2,
            Self::Runtime(_) | Self::RuntimeCause { .. } => 1,
        }
    }

    /// The message and every cause below it not already part of it
    /// (`outer: inner: innermost`), for the terminal.
    pub(crate) fn report(&self) -> String {
        let mut text = self.to_string();
        let mut next = self.source();
        while let Some(cause) = next {
            let line = cause.to_string();
            if !text.contains(&line) {
                text.push_str(": ");
                text.push_str(&line);
            }
            next = cause.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_report_carries_every_cause_once() {
        let e = CliError::config_from(Outer(std::io::Error::other("disk on fire")));
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "outer");
        assert_eq!(e.report(), "outer: disk on fire");
        // A message that already shows its cause does not repeat it.
        let e = CliError::runtime_from(std::io::Error::other("x: y"));
        assert_eq!((e.exit_code(), e.report()), (1, "x: y".to_owned()));
    }
}
