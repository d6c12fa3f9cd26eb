//! Which proxy a request goes through, from the usual variables (`HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY`, their lower-case forms, and `NO_PROXY`), with one
//! rule on top: a keyed request never crosses a proxy in clear (SPEC §4).
//!
//! - A loopback address (`127.0.0.1`, `::1`, `localhost`) is never proxied: it is
//!   the one place a key may go over plain `http://`, and a proxy there would
//!   receive the whole request, key included.
//! - An `https://` request goes through a proxy only as a `CONNECT` tunnel: the
//!   proxy learns the host name and port, and TLS runs end to end inside it, so a
//!   corporate proxy stays usable without ever seeing a key.
//! - A plain `http://` request to another host carries no key (the host rule
//!   refuses that) and may use `HTTP_PROXY`.
//!
//! This module decides; `http.rs` hands the decision to the HTTP client.

use url::Url;

use crate::keys::hosts::is_loopback;

/// The proxies the environment names, for each kind of request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// For `https://` requests: the proxy, and the variable it came from.
    pub https: Option<(Url, &'static str)>,
    /// For plain `http://` requests (never keyed).
    pub http: Option<(Url, &'static str)>,
    /// `NO_PROXY`: hosts (and their subdomains) reached directly; `*` for all.
    pub no_proxy: Vec<String>,
}

/// The variables read, in order, for each kind of request (as curl reads them).
const HTTPS_VARS: [&str; 4] = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];
const HTTP_VARS: [&str; 4] = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

impl Proxies {
    /// The proxies `env` names. A proxy byok-flow cannot use as a `CONNECT` tunnel
    /// (`socks5://`) or cannot read is an error that names the variable.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Proxies, String> {
        // Under CGI a request's `Proxy:` header arrives as HTTP_PROXY ("httpoxy"):
        // then only the lower-case name counts, as curl and Go decide.
        let cgi = env("REQUEST_METHOD").is_some();
        let pick = |vars: [&'static str; 4]| -> Result<Option<(Url, &'static str)>, String> {
            let Some((var, value)) = vars
                .iter()
                .filter(|v| !(cgi && **v == "HTTP_PROXY"))
                .find_map(|v| env(v).filter(|s| !s.trim().is_empty()).map(|s| (*v, s)))
            else {
                return Ok(None);
            };
            let value = value.trim();
            // `proxy.corp:3128`, as curl takes it, is an http proxy.
            let text = if value.contains("://") {
                value.to_string()
            } else {
                format!("http://{value}")
            };
            let url = Url::parse(&text)
                .ok()
                .filter(|u| u.host_str().is_some())
                .ok_or_else(|| {
                    format!("`{var}` is not a proxy URL like `http://proxy.example:3128`")
                })?;
            match url.scheme() {
                "http" | "https" => Ok(Some((url, var))),
                other => Err(format!(
                    "`{var}` names a `{other}://` proxy; byok-flow uses HTTP proxies (`http://` or `https://`), through which it tunnels TLS with CONNECT"
                )),
            }
        };
        let no_proxy = ["no_proxy", "NO_PROXY"]
            .iter()
            .find_map(|v| env(v).filter(|s| !s.trim().is_empty()))
            .map(|list| {
                list.split(',')
                    .map(|h| h.trim().trim_start_matches("*.").trim_start_matches('.'))
                    .filter(|h| !h.is_empty())
                    .map(|h| {
                        // A port is ignored, as most tools do; brackets of IPv6 kept off.
                        let h = h.trim_start_matches('[');
                        let h = h.split_once(']').map_or(h, |(ip, _)| ip);
                        match h.rsplit_once(':') {
                            Some((host, port))
                                if !host.contains(':') && port.parse::<u16>().is_ok() =>
                            {
                                host
                            }
                            _ => h,
                        }
                        .to_ascii_lowercase()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Proxies {
            https: pick(HTTPS_VARS)?,
            http: pick(HTTP_VARS)?,
            no_proxy,
        })
    }

    /// Whether `NO_PROXY` names the target's host (or a domain above it).
    fn bypassed(&self, target: &Url) -> bool {
        let Some(host) = target.host_str() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.no_proxy.iter().any(|entry| {
            entry == "*"
                || host == *entry
                || host
                    .strip_suffix(entry.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
    }

    /// The proxy a request to `target` goes through, if any.
    pub fn for_target(&self, target: &Url) -> Option<&Url> {
        if is_loopback(target) || self.bypassed(target) {
            return None;
        }
        let chosen = match target.scheme() {
            "https" => &self.https,
            "http" => &self.http,
            _ => &None,
        };
        chosen.as_ref().map(|(url, _)| url)
    }

    /// The proxies' secrets, to keep out of every output: each password, or the
    /// user name when there is no password (a token, as many proxies take one);
    /// as they are sent (percent-decoded, in `Proxy-Authorization`), which also
    /// finds them as written in the URL, since the redaction reads `%40` as `@`.
    pub fn passwords(&self) -> impl Iterator<Item = String> {
        [&self.https, &self.http]
            .into_iter()
            .flatten()
            .map(|(url, _)| url.password().unwrap_or(url.username()))
            .filter(|secret| !secret.is_empty())
            .map(|p| {
                percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    }

    /// What `-v` says about them, one line each.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some((url, var)) = &self.https {
            lines.push(format!(
                "https:// requests go through the proxy {} (from {var}) as a CONNECT tunnel: it sees the host name, never the key or the request; loopback addresses and NO_PROXY hosts go direct",
                shown(url)
            ));
        }
        if let Some((url, var)) = &self.http {
            lines.push(format!(
                "plain http:// requests to hosts that are not loopback (which never carry a key) go through the proxy {} (from {var})",
                shown(url)
            ));
        }
        lines
    }
}

/// A proxy URL as shown: without its user name and password.
pub fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(vars: &[(&str, &str)]) -> Result<Proxies, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        Proxies::from_env(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    fn through(p: &Proxies, target: &str) -> Option<String> {
        p.for_target(&Url::parse(target).unwrap()).map(shown)
    }

    #[test]
    fn loopback_is_never_proxied_and_https_goes_by_its_own_variable() {
        let p = proxies(&[
            ("HTTP_PROXY", "http://plain.example:3128"),
            ("HTTPS_PROXY", "http://user:s3cret@tunnel.example:8080"),
        ])
        .unwrap();
        for target in [
            "http://127.0.0.1:9000/v1",
            "http://localhost:11434/v1",
            "http://[::1]:8080/",
            "https://127.0.0.2/",
        ] {
            assert_eq!(through(&p, target), None, "{target}");
        }
        assert_eq!(
            through(&p, "https://api.anthropic.com/v1/messages").as_deref(),
            Some("http://tunnel.example:8080/")
        );
        assert_eq!(
            through(&p, "http://10.0.0.5:8080/v1").as_deref(),
            Some("http://plain.example:3128/")
        );
        assert_eq!(p.passwords().collect::<Vec<_>>(), ["s3cret"]);
        // A password is kept as it is sent: percent-decoded.
        let encoded =
            proxies(&[("HTTPS_PROXY", "http://me:p%40ss%3Aw0rd@proxy.example:3128")]).unwrap();
        assert_eq!(encoded.passwords().collect::<Vec<_>>(), ["p@ss:w0rd"]);
        // A user name alone is a token; a proxy with neither has no secret.
        let token = proxies(&[
            ("HTTPS_PROXY", "http://tok%2Fen-1@proxy.example:3128"),
            ("HTTP_PROXY", "http://proxy.example:3128"),
        ])
        .unwrap();
        assert_eq!(token.passwords().collect::<Vec<_>>(), ["tok/en-1"]);
        let said = p.describe().join("\n");
        assert!(
            said.contains("tunnel.example:8080") && said.contains("CONNECT"),
            "{said}"
        );
        assert!(!said.contains("s3cret"), "{said}");
    }

    #[test]
    fn all_proxy_lower_case_and_bare_hosts() {
        let p = proxies(&[("all_proxy", "proxy.corp:3128")]).unwrap();
        assert_eq!(
            through(&p, "https://api.openai.com/v1").as_deref(),
            Some("http://proxy.corp:3128/")
        );
        let p = proxies(&[
            ("https_proxy", "http://a.example:1"),
            ("HTTPS_PROXY", "http://b.example:1"),
        ])
        .unwrap();
        assert_eq!(p.https.unwrap().1, "https_proxy");
        assert_eq!(proxies(&[]).unwrap(), Proxies::default());
        assert_eq!(
            proxies(&[("HTTPS_PROXY", " ")]).unwrap(),
            Proxies::default()
        );
    }

    #[test]
    fn no_proxy_names_hosts_and_their_subdomains() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://proxy.corp:3128"),
            (
                "NO_PROXY",
                "internal.corp, .example.org,10.1.2.3:8443,[::2]",
            ),
        ])
        .unwrap();
        for direct in [
            "https://internal.corp/v1",
            "https://llm.internal.corp/v1",
            "https://example.org/",
            "https://a.example.org/",
            "https://10.1.2.3/",
            "https://[::2]/",
        ] {
            assert_eq!(through(&p, direct), None, "{direct}");
        }
        for proxied in ["https://notinternal.corp/", "https://api.openai.com/v1"] {
            assert!(through(&p, proxied).is_some(), "{proxied}");
        }
        let all = proxies(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "*")]).unwrap();
        assert_eq!(through(&all, "https://api.openai.com/v1"), None);
    }

    #[test]
    fn a_cgi_request_cannot_choose_the_proxy() {
        let p = proxies(&[
            ("REQUEST_METHOD", "GET"),
            ("HTTP_PROXY", "http://evil.example:1"),
        ])
        .unwrap();
        assert_eq!(p.http, None);
    }

    #[test]
    fn socks_and_nonsense_are_refused_by_name() {
        let err = proxies(&[("ALL_PROXY", "socks5://127.0.0.1:1080")]).unwrap_err();
        assert!(
            err.contains("`ALL_PROXY` names a `socks5://` proxy"),
            "{err}"
        );
        let err = proxies(&[("HTTPS_PROXY", "http://")]).unwrap_err();
        assert!(err.contains("`HTTPS_PROXY` is not a proxy URL"), "{err}");
    }
}
