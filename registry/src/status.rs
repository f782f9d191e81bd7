//! The `backend_status` protocol of XOS's synchronizers, owned by one type so nobody parses
//! `"1 - …"` by hand: a code, `" - "`, a message.

use std::fmt;

/// What a synchronizer last said about an object.
///
/// `0` is provisioning (nothing enacted yet), `1` enacted (or an innocuous hiccup XOS chose not
/// to call a failure), `2` failed. Rows written before the code existed may hold an empty text or
/// the bare `Provisioning in progress`: [`BackendStatus::Unset`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendStatus {
    Unset,
    Pending(String),
    Ok(String),
    Failed(String),
}

impl BackendStatus {
    /// The default of every synchronized row.
    pub const PROVISIONING: &'static str = "0 - Provisioning in progress";

    /// Read a stored status; a text without a known code is a failure message (XOS showed those
    /// with the error icon).
    pub fn parse(s: &str) -> BackendStatus {
        let s = s.trim_start();
        if s.is_empty() || s == "Provisioning in progress" {
            return BackendStatus::Unset;
        }
        let rest = |code: &str| {
            s.strip_prefix(code)
                .and_then(|r| r.strip_prefix(" -"))
                .map(|r| r.strip_prefix(' ').unwrap_or(r).to_string())
        };
        if let Some(m) = rest("0") {
            BackendStatus::Pending(m)
        } else if let Some(m) = rest("1") {
            BackendStatus::Ok(m)
        } else if let Some(m) = rest("2") {
            BackendStatus::Failed(m)
        } else {
            BackendStatus::Failed(s.to_string())
        }
    }

    /// Enacted: `OK` when the step said nothing more.
    pub fn ok(message: Option<&str>) -> BackendStatus {
        BackendStatus::Ok(message.filter(|m| !m.is_empty()).unwrap_or("OK").to_string())
    }

    /// Whether the last sync succeeded (`1 - …`).
    pub fn is_ok(&self) -> bool {
        matches!(self, BackendStatus::Ok(_))
    }

    /// Whether the last sync failed (`2 - …` or an unknown text).
    pub fn is_failed(&self) -> bool {
        matches!(self, BackendStatus::Failed(_))
    }

    /// The code XOS wrote (`Unset` counts as provisioning).
    pub fn code(&self) -> u8 {
        match self {
            BackendStatus::Unset | BackendStatus::Pending(_) => 0,
            BackendStatus::Ok(_) => 1,
            BackendStatus::Failed(_) => 2,
        }
    }

    /// The message without its code.
    pub fn message(&self) -> &str {
        match self {
            BackendStatus::Unset => "Provisioning in progress",
            BackendStatus::Pending(m) | BackendStatus::Ok(m) | BackendStatus::Failed(m) => m,
        }
    }
}

/// The stored form, `"<code> - <message>"`.
impl fmt::Display for BackendStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} - {}", self.code(), self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::BackendStatus as S;

    #[test]
    fn round_trips_and_reads_old_texts() {
        for s in [
            S::Pending("x".into()),
            S::Ok("OK: ACTIVE as 1".into()),
            S::Failed("boom - bad".into()),
        ] {
            assert_eq!(S::parse(&s.to_string()), s);
        }
        assert_eq!(
            S::parse(S::PROVISIONING),
            S::Pending("Provisioning in progress".into())
        );
        assert_eq!(S::parse(""), S::Unset);
        assert_eq!(S::parse("Provisioning in progress"), S::Unset);
        assert_eq!(S::parse("1 -"), S::Ok(String::new()));
        assert_eq!(S::parse("something odd"), S::Failed("something odd".into()));
        assert_eq!(S::parse("10 - not a code"), S::Failed("10 - not a code".into()));
        assert!(S::parse("1 - OK").is_ok() && !S::parse("1 - OK").is_failed());
        assert!(S::parse("2 - Failed dependency: Slice a").is_failed());
        assert_eq!(S::ok(None).to_string(), "1 - OK");
        assert_eq!(S::ok(Some("")).to_string(), "1 - OK");
        assert_eq!(S::ok(Some("OK, network n")).to_string(), "1 - OK, network n");
    }
}
