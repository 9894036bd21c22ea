//! Mozilla-style autoconfig (Thunderbird's `config-v1.1.xml`): fetched over
//! HTTPS only, bounded in time and size, parsed without DTDs.

use std::time::Duration;

use serde::Serialize;

use super::{valid_host, Security, MAX_RECORDS};

/// Largest autoconfig document read; real ones are a few kilobytes.
pub const MAX_BYTES: usize = 64 * 1024;
/// Redirects followed (HTTPS to HTTPS only).
const MAX_REDIRECTS: usize = 3;

/// A server an autoconfig document names.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Server {
    /// `smtp` or `imap` (others are ignored).
    pub kind: String,
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// `authentication` values (password-cleartext, OAuth2, ...).
    pub authentication: Vec<String>,
    /// The user name with the placeholders filled in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// What one URL gave.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub servers: Vec<Server>,
    /// Entries that were ignored, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The URLs a mail client tries for `domain` (RFC-less, Thunderbird's convention), HTTPS only.
pub fn default_urls(address: &str, domain: &str) -> Vec<String> {
    let first = format!("https://autoconfig.{domain}/mail/config-v1.1.xml");
    let first = reqwest::Url::parse_with_params(&first, &[("emailaddress", address)])
        .map(|u| u.to_string())
        .unwrap_or(first);
    vec![
        first,
        format!("https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml"),
    ]
}

/// Host names of autoconfig URLs resolved by discovery's resolver, so that
/// `--resolver` applies to them too.
struct Dns(hickory_resolver::TokioResolver);

impl reqwest::dns::Resolve for Dns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = super::dns::addresses(&resolver, &host)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| std::net::SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// An HTTP client for autoconfig: our TLS set-up, no plain-HTTP redirects;
/// names resolved by `resolver` when given (else the system's way).
pub fn client(
    tls: rustls::ClientConfig,
    timeout: Duration,
    resolver: Option<hickory_resolver::TokioResolver>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(r) = resolver {
        builder = builder.dns_resolver(std::sync::Arc::new(Dns(r)));
    }
    builder
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if attempt.url().scheme() != "https" {
                attempt.error("redirected to a URL that is not HTTPS")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| format!("cannot set up the HTTPS client: {e}"))
}

/// Fetches and parses one autoconfig URL.
pub async fn fetch(client: &reqwest::Client, url: &str, address: &str) -> Finding {
    let mut f = Finding {
        url: url.to_string(),
        error: None,
        servers: Vec::new(),
        problems: Vec::new(),
    };
    match get(client, url).await {
        Ok(body) => match parse(&body, address) {
            Ok((servers, problems)) => {
                f.servers = servers;
                f.problems = problems;
            }
            Err(e) => f.error = Some(e),
        },
        Err(e) => f.error = Some(e),
    }
    f
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    if !url.starts_with("https://") {
        return Err(
            "only HTTPS autoconfig URLs are used (the answer configures credentials)".into(),
        );
    }
    let mut resp = client.get(url).send().await.map_err(|e| {
        let what = if mailhost_tls::is_certificate_error(&e) {
            "the server's certificate is not trusted (give --ca-file for a private CA)"
        } else if e.is_timeout() {
            "no answer in time"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        let mut detail = String::new();
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        format!("{what}: {detail}")
    })?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    if resp.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
        return Err(format!("the document is larger than {MAX_BYTES} bytes"));
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BYTES {
                    return Err(format!("the document is larger than {MAX_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(format!("reading the answer failed: {e}")),
        }
    }
    String::from_utf8(body).map_err(|e| {
        format!(
            "the document is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The servers a `config-v1.1.xml` names. DTDs (and so entity expansion) are refused.
pub fn parse(xml: &str, address: &str) -> Result<(Vec<Server>, Vec<String>), String> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| format!("not a well-formed autoconfig document: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "clientConfig" {
        return Err(format!(
            "not an autoconfig document: the root element is <{}>, not <clientConfig>",
            super::excerpt(root.tag_name().name())
        ));
    }
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let fill = |s: &str| {
        s.replace("%EMAILADDRESS%", address)
            .replace("%EMAILLOCALPART%", local)
            .replace("%EMAILDOMAIN%", domain)
    };
    let mut servers = Vec::new();
    let mut problems = Vec::new();
    let providers = root.children().filter(|n| n.has_tag_name("emailProvider"));
    for provider in providers {
        for node in provider
            .children()
            .filter(|n| n.has_tag_name("incomingServer") || n.has_tag_name("outgoingServer"))
        {
            if servers.len() >= MAX_RECORDS {
                problems.push(format!(
                    "more than {MAX_RECORDS} servers; the rest are ignored"
                ));
                return Ok((servers, problems));
            }
            let kind = node.attribute("type").unwrap_or("").to_ascii_lowercase();
            if kind != "smtp" && kind != "imap" {
                continue;
            }
            let text = |tag: &str| -> Option<String> {
                node.children()
                    .find(|c| c.has_tag_name(tag))
                    .and_then(|c| c.text())
                    .map(|t| fill(t.trim()))
            };
            let Some(host) = text("hostname") else {
                problems.push(format!("a {kind} server without <hostname>; ignored"));
                continue;
            };
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            if !valid_host(&host) {
                problems.push(format!(
                    "{kind} hostname `{}` is not a host name; ignored",
                    super::excerpt(&host)
                ));
                continue;
            }
            let security = match text("socketType").as_deref() {
                Some("SSL") => Security::Tls,
                Some("STARTTLS") => Security::Starttls,
                Some("plain") => Security::None,
                other => {
                    problems.push(format!(
                        "{kind} server {host}: socketType `{}` is not SSL, STARTTLS or plain; ignored",
                        super::excerpt(other.unwrap_or(""))
                    ));
                    continue;
                }
            };
            let port = match text("port").map(|p| p.parse::<u16>()) {
                Some(Ok(p)) if p > 0 => p,
                None => security.default_port(&kind),
                Some(_) => {
                    problems.push(format!(
                        "{kind} server {host}: the port is not 1-65535; ignored"
                    ));
                    continue;
                }
            };
            let authentication = node
                .children()
                .filter(|c| c.has_tag_name("authentication"))
                .filter_map(|c| c.text())
                .map(|t| super::excerpt(t.trim()))
                .take(8)
                .collect();
            let username = text("username").map(|u| super::excerpt(&u));
            servers.push(Server {
                kind,
                host,
                port,
                security,
                authentication,
                username,
            });
        }
    }
    Ok((servers, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    const THUNDERBIRD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.com">
    <domain>example.com</domain>
    <displayName>Example Mail</displayName>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.com</hostname>
      <port>995</port>
      <socketType>SSL</socketType>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.com</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <authentication>OAuth2</authentication>
      <authentication>password-cleartext</authentication>
      <username>%EMAILLOCALPART%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>"#;

    #[test]
    fn reads_thunderbird_documents_and_fills_placeholders() {
        let (servers, problems) = parse(THUNDERBIRD, "jo@example.com").unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(servers.len(), 2, "pop3 is not ours: {servers:?}");
        assert_eq!(servers[0].kind, "imap");
        assert_eq!(servers[0].host, "imap.example.com");
        assert_eq!(servers[0].security, Security::Tls);
        assert_eq!(servers[0].username.as_deref(), Some("jo@example.com"));
        assert_eq!(servers[1].kind, "smtp");
        assert_eq!(servers[1].port, 587);
        assert_eq!(servers[1].security, Security::Starttls);
        assert_eq!(servers[1].authentication, ["OAuth2", "password-cleartext"]);
        assert_eq!(servers[1].username.as_deref(), Some("jo"));
    }

    #[test]
    fn default_urls_encode_the_address() {
        assert_eq!(
            default_urls("jo+x@example.com", "example.com"),
            [
                "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=jo%2Bx%40example.com",
                "https://example.com/.well-known/autoconfig/mail/config-v1.1.xml",
            ]
        );
    }

    #[test]
    fn refuses_dtds_so_no_entity_expansion() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<clientConfig><emailProvider><outgoingServer type="smtp"><hostname>&lol2;</hostname></outgoingServer></emailProvider></clientConfig>"#;
        let e = parse(bomb, "a@b.c").unwrap_err();
        assert!(e.contains("not a well-formed autoconfig document"), "{e}");
    }

    #[test]
    fn hostile_values_are_ignored_with_a_reason() {
        let xml = r#"<clientConfig><emailProvider>
<outgoingServer type="smtp"><hostname>evil host
injected = "x"</hostname><port>587</port><socketType>STARTTLS</socketType></outgoingServer>
<outgoingServer type="smtp"><hostname>smtp.example.com</hostname><port>99999</port><socketType>SSL</socketType></outgoingServer>
<outgoingServer type="smtp"><hostname>smtp.example.com</hostname><port>465</port><socketType>TLSv9</socketType></outgoingServer>
<outgoingServer type="smtp"><port>465</port></outgoingServer>
<outgoingServer type="smtp"><hostname>ok.example.com</hostname><socketType>SSL</socketType></outgoingServer>
</emailProvider></clientConfig>"#;
        let (servers, problems) = parse(xml, "a@example.com").unwrap();
        assert_eq!(servers.len(), 1, "{servers:?}");
        assert_eq!(servers[0].host, "ok.example.com");
        assert_eq!(servers[0].port, 465, "SSL without a port means 465");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().all(|p| !p.contains('\n')), "{problems:?}");
    }

    #[test]
    fn not_autoconfig_is_an_error_not_a_panic() {
        for bad in [
            "",
            "<html><body>404</body></html>",
            "<clientConfig",
            "\u{0}\u{1}",
            "<a><b></a>",
        ] {
            assert!(parse(bad, "a@b.c").is_err(), "{bad:?}");
        }
        let many = format!(
            "<clientConfig><emailProvider>{}</emailProvider></clientConfig>",
            "<outgoingServer type=\"smtp\"><hostname>s.example.com</hostname><socketType>SSL</socketType></outgoingServer>".repeat(500)
        );
        let (servers, problems) = parse(&many, "a@b.c").unwrap();
        assert_eq!(servers.len(), MAX_RECORDS);
        assert_eq!(problems.len(), 1);
    }
}
