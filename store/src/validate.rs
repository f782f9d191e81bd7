//! Field-level validation: JSON input to typed values, and the checks Django's field types and
//! attributes imply (required, blank, max_length, choices, formats, named validators).
//!
//! Messages follow Django REST Framework's wording, so XOS clients see familiar errors.

use super::FieldErrors;
use crate::db::{Value, parse_time};
use registry::{Field, FieldKind, Model, SqlType, Validator};
use serde_json::Value as Json;

/// What a text with a NUL character is answered (DRF's wording).
pub const NUL_MESSAGE: &str = "Null characters are not allowed.";

/// Convert one JSON input value to the field's stored type, or say why it cannot be.
pub fn parse_value(reg: &registry::Registry, f: &Field, v: &Json) -> Result<Value, String> {
    let ty = f.kind.sql_type();
    if v.is_null() {
        return Ok(Value::Null(ty));
    }
    match &f.kind {
        FieldKind::Boolean | FieldKind::NullBoolean => match v {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::String(s) if matches!(s.as_str(), "true" | "True" | "1") => Ok(Value::Bool(true)),
            Json::String(s) if matches!(s.as_str(), "false" | "False" | "0") => Ok(Value::Bool(false)),
            Json::String(s) if s.is_empty() && f.null => Ok(Value::Null(ty)),
            Json::Number(n) if n.as_i64() == Some(1) => Ok(Value::Bool(true)),
            Json::Number(n) if n.as_i64() == Some(0) => Ok(Value::Bool(false)),
            _ => Err("Must be a valid boolean.".into()),
        },
        FieldKind::Integer | FieldKind::PositiveInteger | FieldKind::AutoId => {
            let n = match v {
                Json::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
                Json::String(s) if s.trim().is_empty() && f.null => return Ok(Value::Null(ty)),
                Json::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            n.map(Value::Int)
                .ok_or_else(|| "A valid integer is required.".into())
        }
        FieldKind::Float => {
            let n = match v {
                Json::Number(n) => n.as_f64(),
                Json::String(s) if s.trim().is_empty() && f.null => return Ok(Value::Null(ty)),
                Json::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
                _ => None,
            };
            n.map(Value::Float)
                .ok_or_else(|| "A valid number is required.".into())
        }
        FieldKind::DateTime { .. } => match v {
            Json::String(s) => parse_time(s)
                .map(Value::Time)
                .ok_or_else(|| "Datetime has wrong format. Use RFC 3339, e.g. 2015-12-31T12:00:00Z.".into()),
            _ => Err("Datetime has wrong format. Use RFC 3339, e.g. 2015-12-31T12:00:00Z.".into()),
        },
        FieldKind::ForeignKey { to, .. } => parse_reference(reg, to, v).map(Value::Int),
        FieldKind::Char { .. }
        | FieldKind::Text { .. }
        | FieldKind::Email { .. }
        | FieldKind::GenericIpAddress
        | FieldKind::Url { .. }
        | FieldKind::Slug { .. }
        | FieldKind::Password => match v {
            // DRF's message; Postgres cannot store a NUL in text at all, SQLite would.
            Json::String(s) if s.contains('\0') => Err(NUL_MESSAGE.into()),
            Json::String(s) => Ok(Value::Text(if f.strip {
                s.trim().to_string()
            } else {
                s.clone()
            })),
            // A slug names things (a site's login_base prefixes its slices' names): text only.
            Json::Number(_) | Json::Bool(_) if matches!(f.kind, FieldKind::Slug { .. }) => {
                Err("Not a valid string.".into())
            }
            Json::Number(n) => Ok(Value::Text(n.to_string())),
            Json::Bool(b) => Ok(Value::Text(b.to_string())),
            _ => Err("Not a valid string.".into()),
        },
    }
}

/// A foreign key is written as an integer id, a numeric string, or the hyperlink the API emits
/// (`http://host/xos/sites/3/`).
fn parse_reference(reg: &registry::Registry, to: &str, v: &Json) -> Result<i64, String> {
    let bad = || {
        format!(
            "Incorrect type. Expected pk value or URL, received {}.",
            json_type(v)
        )
    };
    match v {
        Json::Number(n) => n.as_i64().ok_or_else(bad),
        Json::String(s) => {
            if let Ok(id) = s.trim().parse::<i64>() {
                return Ok(id);
            }
            let target = reg.model(to).map(|m| m.plural.as_str()).unwrap_or("");
            let path = url::Url::parse(s)
                .map(|u| u.path().to_string())
                .unwrap_or_else(|_| s.clone());
            let mut parts = path.trim_end_matches('/').rsplit('/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(id), Some(plural), Some("xos")) if plural == target => id
                    .parse::<i64>()
                    .map_err(|_| "Invalid hyperlink - Object does not exist.".to_string()),
                _ => Err("Invalid hyperlink - No URL match.".into()),
            }
        }
        _ => Err(bad()),
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

/// Check one field's final value against its declaration; push messages into `errors`.
pub fn check_field(f: &Field, v: &Value, errors: &mut FieldErrors) {
    let mut err = |key: &str, default: String| {
        let msg = f.message(key).map(str::to_string).unwrap_or(default);
        errors.entry(f.name.clone()).or_default().push(msg);
    };
    match v {
        Value::Null(_) => {
            if !f.null && f.kind.sql_type() != SqlType::Text {
                err("null", "This field may not be null.".into());
            } else if !f.null {
                // A NULL for a text column: blank fields store "", others are required.
                err("null", "This field may not be null.".into());
            }
        }
        Value::Text(s) => {
            if s.is_empty() {
                if !f.blank {
                    err("blank", "This field may not be blank.".into());
                }
                return;
            }
            if let Some(max) = f.kind.max_length()
                && s.chars().count() > max as usize
            {
                err(
                    "max_length",
                    format!("Ensure this field has no more than {max} characters."),
                );
            }
            if !f.choices.is_empty() && !f.choices.iter().any(|c| &c.value == s) {
                err("invalid_choice", format!("\"{s}\" is not a valid choice."));
            }
            match f.kind {
                FieldKind::Email { .. } if !valid_email(s) => {
                    err("invalid", "Enter a valid email address.".into())
                }
                FieldKind::Url { .. } if !valid_url(s) => err("invalid", "Enter a valid URL.".into()),
                FieldKind::GenericIpAddress if s.parse::<std::net::IpAddr>().is_err() => {
                    err("invalid", "Enter a valid IPv4 or IPv6 address.".into())
                }
                FieldKind::Slug { .. }
                    if !s
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    err(
                        "invalid",
                        "Enter a valid \"slug\" consisting of letters, numbers, underscores or hyphens."
                            .into(),
                    )
                }
                _ => {}
            }
            for v in &f.validators {
                if let Some(msg) = run_validator(*v, s) {
                    errors.entry(f.name.clone()).or_default().push(msg);
                }
            }
        }
        Value::Int(i) => {
            if matches!(f.kind, FieldKind::PositiveInteger) && *i < 0 {
                err(
                    "min_value",
                    "Ensure this value is greater than or equal to 0.".into(),
                );
            }
            if !f.choices.is_empty() && !f.choices.iter().any(|c| c.value == i.to_string()) {
                err("invalid_choice", format!("\"{i}\" is not a valid choice."));
            }
        }
        Value::Bool(_) | Value::Float(_) | Value::Time(_) => {}
    }
}

/// The validators a declaration may list (`Field::validator`): the error for text `s`, if any.
fn run_validator(v: Validator, s: &str) -> Option<String> {
    match v {
        Validator::NoSpaces => s
            .contains(char::is_whitespace)
            .then(|| "Must not contain spaces.".into()),
        Validator::NoComma => s.contains(',').then(|| "Must not contain a comma.".into()),
        Validator::DashboardUrl => {
            (!(s.starts_with("template:") || s.starts_with("http://") || s.starts_with("https://")))
                .then(|| "Must start with \"template:\", \"http://\" or \"https://\".".into())
        }
        Validator::PortList => port_list_error(s),
        Validator::DomainName => registry::domain_name_error(s),
        Validator::Check(check) => (check.check)(s),
    }
}

/// XOS's NAT port list: `tcp 123, tcp 201:206, udp 333` (protocol, port or low:high range).
fn port_list_error(s: &str) -> Option<String> {
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut words = part.split_whitespace();
        let (Some(proto), Some(ports), None) = (words.next(), words.next(), words.next()) else {
            return Some(format!(
                "\"{part}\" is not of the form \"tcp 123\" or \"udp 200:210\"."
            ));
        };
        if !matches!(proto.to_ascii_lowercase().as_str(), "tcp" | "udp") {
            return Some(format!("\"{proto}\" is not a protocol (tcp or udp)."));
        }
        let port = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0);
        let ok = match ports.split_once(':') {
            Some((lo, hi)) => matches!((port(lo), port(hi)), (Some(l), Some(h)) if l <= h),
            None => port(ports).is_some(),
        };
        if !ok {
            return Some(format!("\"{ports}\" is not a port or a port range."));
        }
    }
    None
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-' || c == '[' || c == ']' || c == ':')
}

fn valid_url(s: &str) -> bool {
    url::Url::parse(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https" | "ftp" | "ftps") && u.host().is_some())
}

/// The initial values of a new object: every field's default (`Now` for timestamps).
pub fn defaults(model: &Model, now: chrono::DateTime<chrono::Utc>) -> Vec<Option<Value>> {
    model
        .fields
        .iter()
        .map(|f| {
            if let FieldKind::DateTime {
                auto_now,
                auto_now_add,
            } = f.kind
                && (auto_now || auto_now_add)
            {
                return Some(Value::Time(now));
            }
            match &f.default {
                Some(registry::FieldDefault::Now) => Some(Value::Time(now)),
                Some(registry::FieldDefault::Value(v)) => parse_value(registry::registry(), f, v).ok(),
                None if f.null => Some(Value::Null(f.kind.sql_type())),
                None if matches!(f.kind, FieldKind::AutoId) => None,
                None => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::registry;
    use serde_json::json;

    fn field(model: &str, name: &str) -> &'static Field {
        registry().model(model).unwrap().field_named(name).unwrap()
    }

    #[test]
    fn integers_accept_numbers_and_numeric_strings_only() {
        let f = field("Slice", "max_instances");
        assert_eq!(parse_value(registry(), f, &json!(5)), Ok(Value::Int(5)));
        assert_eq!(parse_value(registry(), f, &json!("7")), Ok(Value::Int(7)));
        assert!(parse_value(registry(), f, &json!("seven")).is_err());
        assert!(parse_value(registry(), f, &json!([1])).is_err());
        assert!(parse_value(registry(), f, &json!(1.5)).is_err());
    }

    #[test]
    fn foreign_keys_accept_ids_and_hyperlinks_of_the_right_collection() {
        let f = field("Slice", "site");
        assert_eq!(parse_value(registry(), f, &json!(3)), Ok(Value::Int(3)));
        assert_eq!(
            parse_value(registry(), f, &json!("http://h:8000/xos/sites/3/")),
            Ok(Value::Int(3))
        );
        assert!(parse_value(registry(), f, &json!("http://h:8000/xos/users/3/")).is_err());
        assert!(parse_value(registry(), f, &json!(true)).is_err());
    }

    #[test]
    fn strings_are_checked_for_length_choices_and_format() {
        let mut e = FieldErrors::new();
        check_field(field("Site", "login_base"), &Value::Text("x".repeat(51)), &mut e);
        check_field(field("Slice", "network"), &Value::Text("bogus".into()), &mut e);
        check_field(
            field("User", "email"),
            &Value::Text("not-an-email".into()),
            &mut e,
        );
        check_field(
            field("Site", "site_url"),
            &Value::Text("javascript:alert(1)".into()),
            &mut e,
        );
        check_field(field("Slice", "name"), &Value::Text("has space".into()), &mut e);
        check_field(field("Slice", "max_instances"), &Value::Int(-1), &mut e);
        for k in [
            "login_base",
            "network",
            "email",
            "site_url",
            "name",
            "max_instances",
        ] {
            assert!(e.contains_key(k), "{k} not flagged: {e:?}");
        }
    }

    #[test]
    fn port_lists_follow_the_xos_format() {
        assert_eq!(port_list_error("tcp 123, tcp 201:206, udp 333"), None);
        assert!(port_list_error("tcp").is_some());
        assert!(port_list_error("icmp 1").is_some());
        assert!(port_list_error("tcp 206:201").is_some());
        assert!(port_list_error("udp 70000").is_some());
    }

    #[test]
    fn strings_of_the_right_form_pass() {
        let mut e = FieldErrors::new();
        check_field(field("Site", "login_base"), &Value::Text("mysite".into()), &mut e);
        check_field(
            field("User", "email"),
            &Value::Text("padmin@vicci.org".into()),
            &mut e,
        );
        check_field(
            field("Site", "site_url"),
            &Value::Text("http://www.vicci.org/".into()),
            &mut e,
        );
        check_field(
            field("Slice", "description"),
            &Value::Text("😀 ' OR 1=1; --".into()),
            &mut e,
        );
        assert!(e.is_empty(), "{e:?}");
    }
}
