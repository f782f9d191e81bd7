//! The CDN's maps as text. XOS kept access and site maps as uploaded files in a format of the
//! CDN's own; here they are text fields the API, the admin and TOSCA write, checked by these
//! parsers when written (a bad line is a 400 naming the line) and read by the HPC and Request
//! Router synchronizers when they render nginx and DNS configuration.
//!
//! Both formats are line-based; `#` starts a comment, blank lines are ignored.
//!
//! An **access map** lists who may fetch, first match wins, and a client no line matches is
//! refused:
//! ```text
//! allow 10.0.0.0/8
//! deny 10.66.0.0/16     # order matters: this line never matches after the one above
//! allow all
//! ```
//!
//! A **site map** says which caches serve which clients, the longest matching subnet winning;
//! caches are named by their instance names, nearest first:
//! ```text
//! 10.1.0.0/16   mysite_hpc-1 mysite_hpc-2
//! 0.0.0.0/0     mysite_hpc-2
//! ```

use ipnet::IpNet;
use registry::domain_name_error;
use std::net::IpAddr;

/// The clients a line speaks of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clients {
    All,
    Net(IpNet),
}

/// One line of an access map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessRule {
    pub allow: bool,
    pub clients: Clients,
}

/// One line of a site map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteLine {
    pub net: IpNet,
    pub caches: Vec<String>,
}

/// The meaningful lines of a map: (1-based line number, text without the comment).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.split('#').next().unwrap_or_default().trim();
        (!l.is_empty()).then_some((i + 1, l))
    })
}

/// A subnet (`10.1.0.0/16`, `2001:db8::/32`) or one address (`10.1.2.3`), without host bits.
pub fn parse_subnet(s: &str) -> Result<IpNet, String> {
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| format!("\"{s}\" is not a subnet (like 10.1.0.0/16) or an address"))?;
    if net.trunc() != net {
        return Err(format!(
            "\"{s}\" has host bits set; the subnet is {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Parse an access map; the error names the line.
pub fn parse_access_map(text: &str) -> Result<Vec<AccessRule>, String> {
    lines(text)
        .map(|(n, l)| {
            let mut words = l.split_whitespace();
            let (Some(verb), Some(who), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!(
                    "line {n}: \"{l}\" is not \"allow <subnet>\", \"deny <subnet>\", \"allow all\" or \"deny all\""
                ));
            };
            let allow = match verb {
                "allow" => true,
                "deny" => false,
                _ => return Err(format!("line {n}: \"{verb}\" is neither allow nor deny")),
            };
            let clients = if who == "all" {
                Clients::All
            } else {
                Clients::Net(parse_subnet(who).map_err(|e| format!("line {n}: {e}"))?)
            };
            Ok(AccessRule { allow, clients })
        })
        .collect()
}

/// Parse an access map that is an allow list (`allow` lines, then at most a final `deny all`):
/// the allowed subnets, or `None` when everyone is allowed (no map at all, or `allow all`). A
/// map of comments only allows nobody: it denies by default.
pub fn parse_allow_list(text: &str) -> Result<Option<Vec<IpNet>>, String> {
    let rules = parse_access_map(text)?;
    let mut nets = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        match (rule.allow, rule.clients) {
            (true, Clients::All) => return Ok(None),
            (true, Clients::Net(n)) => nets.push(n),
            (false, Clients::All) if i + 1 == rules.len() => {}
            (false, _) => {
                return Err(format!(
                    "rule {}: a DNS access map lists what is allowed (\"allow <subnet>\" lines), then at most \"deny all\"",
                    i + 1
                ));
            }
        }
    }
    Ok((!text.trim().is_empty()).then_some(nets))
}

/// Whether a cache name is one a site map may hold (an instance name: letters, digits, `_`, `-`, `.`).
fn is_cache_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Parse a site map; the error names the line. A subnet may appear once.
pub fn parse_site_map(text: &str) -> Result<Vec<SiteLine>, String> {
    let mut out: Vec<SiteLine> = Vec::new();
    for (n, l) in lines(text) {
        let mut words = l.split_whitespace();
        let net = words.next().unwrap_or_default();
        let net = parse_subnet(net).map_err(|e| format!("line {n}: {e}"))?;
        let caches: Vec<String> = words.map(str::to_string).collect();
        if caches.is_empty() {
            return Err(format!("line {n}: name at least one cache after {net}"));
        }
        if let Some(bad) = caches.iter().find(|c| !is_cache_name(c)) {
            return Err(format!("line {n}: \"{bad}\" is not a cache (instance) name"));
        }
        if out.iter().any(|s| s.net == net) {
            return Err(format!("line {n}: {net} is mapped twice"));
        }
        out.push(SiteLine { net, caches });
    }
    Ok(out)
}

/// `http://host[:port][/path]` (or https): what a cache can proxy to.
pub fn origin_url_error(s: &str) -> Option<String> {
    // The text reaches cache configuration: nothing a configuration language reads as syntax,
    // even where the URL parser would encode or accept it.
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"'{};$\\`<>|^".contains(*c))
    {
        return Some(format!("An origin URL may not hold {c:?}."));
    }
    let Ok(u) = url::Url::parse(s) else {
        return Some("Enter a URL like http://origin.example.org:8080/path.".into());
    };
    if !matches!(u.scheme(), "http" | "https") {
        return Some("An origin is reached over http or https.".into());
    }
    match u.host() {
        None => return Some("The URL names no host.".into()),
        Some(url::Host::Domain(d)) => {
            if let Some(e) = domain_name_error(d.trim_end_matches('.')) {
                return Some(format!(
                    "The host is neither an IP address nor a domain name: {e}"
                ));
            }
        }
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {}
    }
    if !u.username().is_empty() || u.password().is_some() || u.query().is_some() || u.fragment().is_some() {
        return Some("An origin URL has no user, query or fragment.".into());
    }
    // The path is written into cache configuration: plain characters only (no `$`, `;`,
    // quotes or braces, which nginx would read as syntax).
    if !u
        .path()
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~/%+,=:@!".contains(c))
    {
        return Some("The path may hold letters, digits and - . _ ~ / % + , = : @ ! only.".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_maps_parse_and_name_the_bad_line() {
        let rules = parse_access_map("# who may fetch\nallow 10.0.0.0/8\n\ndeny all # the rest\n").unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules[0].allow);
        assert_eq!(rules[0].clients, Clients::Net("10.0.0.0/8".parse().unwrap()));
        assert_eq!(
            rules[1],
            AccessRule {
                allow: false,
                clients: Clients::All
            }
        );
        assert_eq!(parse_access_map("").unwrap(), vec![]);
        let e = parse_access_map("allow all\npermit 10.0.0.0/8").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_access_map("allow 10.1.2.3/16").unwrap_err();
        assert!(e.contains("10.1.0.0/16"), "{e}");
        assert!(parse_access_map("allow 10.0.0.0/33").is_err());
        assert!(parse_access_map("allow").is_err());
        assert!(parse_access_map("deny 2001:db8::/32").is_ok());
    }

    #[test]
    fn allow_lists_are_allow_lines_then_deny_all() {
        assert_eq!(parse_allow_list("").unwrap(), None);
        assert_eq!(parse_allow_list("allow all").unwrap(), None);
        let nets = parse_allow_list("allow 10.0.0.0/8\nallow 127.0.0.0/8\ndeny all")
            .unwrap()
            .unwrap();
        assert_eq!(nets.len(), 2);
        assert_eq!(parse_allow_list("deny all").unwrap(), Some(vec![]));
        // Fail closed: a map of comments only allows nobody.
        assert_eq!(parse_allow_list("# nobody yet\n").unwrap(), Some(vec![]));
        assert_eq!(parse_allow_list("  \n").unwrap(), None);
        assert!(parse_allow_list("deny 10.0.0.0/8\nallow all").is_err());
        assert!(parse_allow_list("deny all\nallow 10.0.0.0/8").is_err());
    }

    #[test]
    fn site_maps_parse_and_name_the_bad_line() {
        let lines = parse_site_map("10.1.0.0/16 a_hpc-1 a_hpc-2\n0.0.0.0/0 a_hpc-2\n").unwrap();
        assert_eq!(lines[0].caches, vec!["a_hpc-1", "a_hpc-2"]);
        assert_eq!(lines[1].net, "0.0.0.0/0".parse::<IpNet>().unwrap());
        assert!(parse_site_map("10.1.0.0/16").unwrap_err().starts_with("line 1:"));
        assert!(parse_site_map("x 10.1.0.0/16 a").is_err());
        assert!(
            parse_site_map("10.1.0.0/16 a\n10.1.0.0/16 b")
                .unwrap_err()
                .contains("twice")
        );
        assert!(parse_site_map("10.1.0.0/16 a;rm").is_err());
        assert_eq!(parse_site_map("10.9.9.9 a").unwrap()[0].net.prefix_len(), 32);
    }

    #[test]
    fn domain_names_and_origin_urls() {
        assert!(domain_name_error("cdn.example.org").is_none());
        assert!(domain_name_error("a-b.c1").is_none());
        for bad in [
            "",
            "cdn..org",
            "-a.org",
            "a-.org",
            "cdn.example.org.",
            "a b.org",
            "x\u{0}.org",
        ] {
            assert!(domain_name_error(bad).is_some(), "{bad:?}");
        }
        assert!(domain_name_error(&"a".repeat(64)).is_some());
        assert!(origin_url_error("http://127.0.0.1:8080/video").is_none());
        assert!(origin_url_error("https://origin.example.org").is_none());
        assert!(origin_url_error("http://[::1]:8080/").is_none());
        for bad in [
            "ftp://x.org/",
            "http://u:p@x.org/",
            "http://x.org/?q=1",
            "not a url",
            "http://",
            "http://x.org/a;b",
            "http://x.org/$host",
            // What reached nginx.conf before: text after the path, syntax in the host.
            "http://127.0.0.1:8890/ }",
            "http://a;b.org/",
            "http://a}b.org/",
            "http://a'b.org/",
            "http://a\"b.org/",
            "http://$host/",
            "http://-bad-.org/",
        ] {
            assert!(origin_url_error(bad).is_some(), "{bad:?}");
        }
    }
}
