//! Where a key may be sent (SPEC §4): only to its provider's own host, to a host
//! its key file's `allow_hosts` names, or to one the person running allows with
//! `--allow-host` / `BYOK_FLOW_ALLOW_HOSTS`; never over plain `http://` except to
//! a loopback address. This module only decides; the HTTP client must still never
//! follow redirects with a key and never put a key in a URL.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use url::{Host, Url};

/// Why a key may not go to a URL. Never holds the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The target is not a URL at all.
    #[error("`{url}` is not a valid URL")]
    InvalidUrl { url: String },
    /// The target is not `https` (or `http` to loopback).
    #[error("`{url}` uses `{scheme}:`; keys are only sent over https")]
    Scheme { url: String, scheme: String },
    /// `http://` to a host that is not loopback.
    #[error(
        "`{url}` is plain http to `{host}`, which is not a loopback address; keys are only sent over https"
    )]
    PlainHttp { url: String, host: String },
    /// Credentials inside the URL (`https://user@host/`): a classic way to disguise a host.
    #[error("`{url}` carries a user name or password; a key is never sent to such a URL")]
    UserInfo { url: String },
    /// A host no rule allows.
    #[error("`{host}` is not {owner} and no allow list names it")]
    NotAllowed {
        host: String,
        /// "anthropic's own host (api.anthropic.com)", or "a known provider's host".
        owner: String,
    },
    /// A loopback address that only the provider's own (loopback) home would
    /// allow: any program on the machine may listen there, so it takes a person's say.
    #[error(
        "`{host}` is a loopback address, where any program on this machine may listen; a key goes there only if you allow it"
    )]
    Loopback { host: String },
    /// A malformed `--allow-host` / `allow_hosts` entry.
    #[error("`{entry}` is not a host name: {reason}")]
    BadPattern { entry: String, reason: &'static str },
}

/// A host a key may go to: `api.example.com`, `api.example.com:8443`,
/// `*.example.com` (any subdomain, not the apex), `127.0.0.1:9000`, `[::1]:9000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host; IPv6 in brackets, as [`Url::host_str`] gives it.
    host: String,
    wildcard: bool,
    /// `None`: any port.
    port: Option<u16>,
}

impl FromStr for HostPattern {
    type Err = HostError;

    fn from_str(entry: &str) -> Result<Self, HostError> {
        let bad = |reason| HostError::BadPattern {
            entry: entry.to_string(),
            reason,
        };
        let text = entry.trim();
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.contains("://") {
            return Err(bad("write the host alone, without `https://`"));
        }
        if text.contains(['/', '@', '?', '#', ' ']) {
            return Err(bad(
                "write the host alone, like `api.example.com` or `127.0.0.1:8080`",
            ));
        }
        let (wildcard, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if rest.contains('*') {
            return Err(bad("`*` may only start a pattern, as in `*.example.com`"));
        }
        let url =
            Url::parse(&format!("https://{rest}/")).map_err(|_| bad("it is not a host name"))?;
        let host = url.host_str().ok_or_else(|| bad("it is not a host name"))?;
        if wildcard
            && (!host.contains('.') || matches!(url.host(), Some(Host::Ipv4(_) | Host::Ipv6(_))))
        {
            return Err(bad(
                "a wildcard needs a domain with a dot after `*.`, like `*.example.com`",
            ));
        }
        // `Url` drops the scheme's default port; keep an explicit `:443` as given.
        let port = url.port().or_else(|| rest.ends_with(":443").then_some(443));
        Ok(HostPattern {
            host: host.to_ascii_lowercase(),
            wildcard,
            port,
        })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl HostPattern {
    /// The host of a provider's default base URL, any port.
    pub fn of_url(base_url: &str) -> Option<HostPattern> {
        let url = Url::parse(base_url).ok()?;
        Some(HostPattern {
            host: url.host_str()?.to_ascii_lowercase(),
            wildcard: false,
            port: None,
        })
    }

    /// `localhost`, 127.0.0.0/8 or `::1`.
    fn is_loopback(&self) -> bool {
        !self.wildcard
            && Url::parse(&format!("http://{}/", self.host)).is_ok_and(|url| is_loopback(&url))
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let host_ok = if self.wildcard {
            host.strip_suffix(&self.host)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// The hosts the person running allows: `--allow-host` and `BYOK_FLOW_ALLOW_HOSTS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowHosts(Vec<HostPattern>);

impl AllowHosts {
    /// Parses `--allow-host` values and `BYOK_FLOW_ALLOW_HOSTS` (separated by commas
    /// or white space).
    pub fn parse(flags: &[String], env: Option<&str>) -> Result<AllowHosts, HostError> {
        let from_env = env
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty());
        flags
            .iter()
            .map(String::as_str)
            .chain(from_env)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(AllowHosts)
    }

    pub fn patterns(&self) -> &[HostPattern] {
        &self.0
    }
}

/// Whether a key may be sent to `target_url`.
///
/// - `provider_home`: the *built-in* default base URL of the key's provider (the
///   key file's `provider`, else the calling provider's name), never a workflow's
///   `base_url`; `None` when that provider is not built in.
/// - `key_allow_hosts`: the key file's `allow_hosts` (empty for `env:` keys).
/// - `cli_allow_hosts`: `--allow-host` and `BYOK_FLOW_ALLOW_HOSTS`.
pub fn check_destination(
    provider_home: Option<&str>,
    key_allow_hosts: &[HostPattern],
    cli_allow_hosts: &AllowHosts,
    target_url: &str,
) -> Result<(), HostError> {
    let url = Url::parse(target_url).map_err(|_| HostError::InvalidUrl {
        url: target_url.to_string(),
    })?;
    let shown = redact(&url);
    if !url.username().is_empty() || url.password().is_some() {
        return Err(HostError::UserInfo { url: shown });
    }
    let host = url
        .host_str()
        .ok_or_else(|| HostError::InvalidUrl { url: shown.clone() })?
        .to_ascii_lowercase();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(HostError::PlainHttp { url: shown, host }),
        other => {
            return Err(HostError::Scheme {
                url: shown,
                scheme: other.to_string(),
            });
        }
    }
    let port = url.port_or_known_default();
    let home = provider_home.and_then(HostPattern::of_url);
    // A loopback home (Ollama's 127.0.0.1:11434) is no home for a key: whoever
    // listens there first gets it, and a shared workflow could aim any `env:`
    // variable at it. Only the person running, or the key file, can allow it.
    let loopback_home = home.as_ref().is_some_and(HostPattern::is_loopback);
    let home = home.filter(|_| !loopback_home);
    let allowed = home
        .iter()
        .chain(key_allow_hosts)
        .chain(cli_allow_hosts.patterns())
        .any(|p| p.matches(&host, port));
    if allowed {
        return Ok(());
    }
    let shown_host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    if loopback_home && is_loopback(&url) {
        return Err(HostError::Loopback { host: shown_host });
    }
    let owner = match &home {
        Some(home) => format!("the provider's own host ({home})"),
        None => "the host of a built-in provider".to_string(),
    };
    Err(HostError::NotAllowed {
        host: shown_host,
        owner,
    })
}

/// Loopback: `localhost`, 127.0.0.0/8 and `::1`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The URL as shown in messages: no user info, query or fragment.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANTHROPIC: Option<&str> = Some("https://api.anthropic.com");

    fn check(
        home: Option<&str>,
        file: &[&str],
        cli: &[&str],
        target: &str,
    ) -> Result<(), HostError> {
        let file: Vec<HostPattern> = file.iter().map(|s| s.parse().unwrap()).collect();
        let cli: Vec<String> = cli.iter().map(|s| (*s).to_string()).collect();
        check_destination(home, &file, &AllowHosts::parse(&cli, None).unwrap(), target)
    }

    #[test]
    fn own_host_is_allowed() {
        assert_eq!(
            check(ANTHROPIC, &[], &[], "https://api.anthropic.com/v1/messages"),
            Ok(())
        );
        assert_eq!(
            check(ANTHROPIC, &[], &[], "https://API.Anthropic.com:443/v1"),
            Ok(())
        );
    }

    #[test]
    fn other_hosts_are_refused_with_the_host_named() {
        let err = check(ANTHROPIC, &[], &[], "https://evil.example.com/v1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`evil.example.com` is not the provider's own host (api.anthropic.com) and no allow list names it"
        );
        // The classic disguise: the real host is after the `@`.
        assert!(matches!(
            check(
                ANTHROPIC,
                &[],
                &[],
                "https://api.anthropic.com@evil.example.com/"
            ),
            Err(HostError::UserInfo { .. })
        ));
        // A look-alike suffix is a different host.
        assert!(
            check(
                ANTHROPIC,
                &[],
                &[],
                "https://api.anthropic.com.evil.example/"
            )
            .is_err()
        );
        // No own host at all (a provider the workflow made up).
        assert!(matches!(
            check(None, &[], &[], "https://api.anthropic.com/"),
            Err(HostError::NotAllowed { .. })
        ));
    }

    #[test]
    fn allow_lists_add_hosts() {
        assert_eq!(
            check(
                None,
                &["proxy.corp.example"],
                &[],
                "https://proxy.corp.example/v1"
            ),
            Ok(())
        );
        assert_eq!(
            check(
                None,
                &[],
                &["proxy.corp.example"],
                "https://proxy.corp.example/v1"
            ),
            Ok(())
        );
        assert_eq!(
            check(
                None,
                &["*.openai.azure.com"],
                &[],
                "https://team.openai.azure.com/x"
            ),
            Ok(())
        );
        assert!(
            check(
                None,
                &["*.openai.azure.com"],
                &[],
                "https://openai.azure.com/x"
            )
            .is_err()
        );
        assert!(
            check(
                None,
                &["*.openai.azure.com"],
                &[],
                "https://evilopenai.azure.com/x"
            )
            .is_err()
        );
        // A port in the pattern must match.
        assert_eq!(
            check(None, &[], &["127.0.0.1:8080"], "http://127.0.0.1:8080/v1"),
            Ok(())
        );
        assert!(check(None, &[], &["127.0.0.1:8080"], "http://127.0.0.1:9090/v1").is_err());
        assert!(check(None, &[], &["example.com:443"], "https://example.com:8443/").is_err());
        assert_eq!(
            check(None, &[], &["example.com:443"], "https://example.com/"),
            Ok(())
        );
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let err = check(None, &["api.example.com"], &[], "http://api.example.com/v1").unwrap_err();
        assert!(matches!(err, HostError::PlainHttp { .. }), "{err}");
        assert_eq!(
            check(None, &[], &["localhost"], "http://localhost:1234/"),
            Ok(())
        );
        assert_eq!(check(None, &[], &["[::1]"], "http://[::1]:1234/"), Ok(()));
        assert_eq!(
            check(None, &[], &["127.0.0.2"], "http://127.0.0.2:1234/"),
            Ok(())
        );
        // Loopback relaxes only the scheme, never the host rule.
        assert!(matches!(
            check(None, &[], &["127.0.0.1"], "http://127.0.0.2:1234/"),
            Err(HostError::NotAllowed { .. })
        ));
        assert!(matches!(
            check(ANTHROPIC, &[], &[], "ftp://api.anthropic.com/"),
            Err(HostError::Scheme { .. })
        ));
        assert!(matches!(
            check(ANTHROPIC, &[], &[], "not a url"),
            Err(HostError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn a_loopback_home_is_no_home_for_a_key() {
        const OLLAMA: Option<&str> = Some("http://127.0.0.1:11434/v1");
        let err = check(OLLAMA, &[], &[], "http://127.0.0.1:11434/v1/chat").unwrap_err();
        assert_eq!(
            err,
            HostError::Loopback {
                host: "127.0.0.1:11434".into()
            }
        );
        assert_eq!(
            check(
                OLLAMA,
                &[],
                &["127.0.0.1:11434"],
                "http://127.0.0.1:11434/v1"
            ),
            Ok(())
        );
        assert_eq!(
            check(OLLAMA, &["localhost"], &[], "http://localhost:11434/v1"),
            Ok(())
        );
        assert!(matches!(
            check(OLLAMA, &[], &[], "https://api.openai.com/v1"),
            Err(HostError::NotAllowed { .. })
        ));
    }

    #[test]
    fn patterns_parse_strictly() {
        for bad in [
            "",
            "https://x.com",
            "x.com/path",
            "user@x.com",
            "*.com",
            "a.*.com",
            "*.1.2.3.4",
            "x y",
        ] {
            assert!(
                bad.parse::<HostPattern>().is_err(),
                "{bad:?} should be refused"
            );
        }
        let p: HostPattern = "API.Example.com:8443".parse().unwrap();
        assert_eq!(p.to_string(), "api.example.com:8443");
        let env = AllowHosts::parse(
            &["a.example".into()],
            Some("b.example, c.example d.example"),
        )
        .unwrap();
        assert_eq!(env.patterns().len(), 4);
    }

    #[test]
    fn messages_never_show_url_secrets() {
        let err = check(
            ANTHROPIC,
            &[],
            &[],
            "https://user:pw@evil.example/?key=sk-canary#frag",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            !text.contains("sk-canary") && !text.contains("pw"),
            "{text}"
        );
        let err = check(ANTHROPIC, &[], &[], "http://evil.example/?key=sk-canary").unwrap_err();
        assert!(!err.to_string().contains("sk-canary"), "{err}");
    }
}
