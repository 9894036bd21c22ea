//! `mailhost discover user@domain`: finds the submission (and IMAP) servers
//! for an address the way mail clients do, checks what they offer, and
//! writes a ready `[accounts.NAME]` block.
//!
//! Order (as Thunderbird and RFC 6186 do): SRV records (`_submissions._tcp`,
//! `_submission._tcp`, `_imaps._tcp`, `_imap._tcp`), Mozilla autoconfig
//! (`autoconfig.<domain>`, `<domain>/.well-known/autoconfig`), then, only when
//! those name no server that answers, likely names (`smtp.<domain>`,
//! `mail.<domain>`, the MX hosts, the domain) on 587/465/25. Every candidate
//! is probed (greeting, EHLO, STARTTLS or implicit TLS, the AUTH mechanisms
//! offered; never a login). Every step has a time limit, the whole run one
//! more; autoconfig documents are size-limited; replies from DNS, HTTPS and
//! SMTP servers are data to check, never trusted.

pub mod autoconfig;
pub mod dns;
pub mod probe;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use probe::{Probe, Protocol};

/// Most records or servers taken from one DNS answer or autoconfig document.
pub const MAX_RECORDS: usize = 16;
/// Most candidates probed per protocol.
pub const MAX_PROBES: usize = 16;

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Implicit TLS (RFC 8314, preferred).
    Tls,
    Starttls,
    None,
}

impl Security {
    pub fn name(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::Starttls => "starttls",
            Security::None => "none",
        }
    }

    fn default_port(self, kind: &str) -> u16 {
        match (kind, self) {
            ("imap", Security::Tls) => 993,
            ("imap", _) => 143,
            (_, Security::Tls) => 465,
            _ => 587,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Security::Tls => "implicit TLS",
            Security::Starttls => "STARTTLS",
            Security::None => "no TLS",
        }
    }
}

/// A port to probe and how it is secured: `587:starttls`, `465:tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub port: u16,
    pub security: Security,
}

impl std::str::FromStr for PortSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (port, sec) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not PORT:SECURITY (e.g. 587:starttls, 465:tls)"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?;
        let security = match sec {
            "tls" => Security::Tls,
            "starttls" => Security::Starttls,
            "none" => Security::None,
            _ => return Err(format!("`{sec}` is not tls, starttls or none")),
        };
        Ok(PortSpec { port, security })
    }
}

/// `mailhost discover` options.
#[derive(Debug, Clone, Args)]
pub struct DiscoverArgs {
    /// The address to find servers for.
    pub address: String,
    /// The account name in the printed block (default: from the domain).
    #[arg(long)]
    pub name: Option<String>,
    /// Ask this DNS server (ADDR:PORT) instead of the system's resolvers.
    #[arg(long, value_name = "ADDR:PORT")]
    pub resolver: Option<SocketAddr>,
    /// Fetch autoconfig from this HTTPS URL instead of the usual ones; repeat for several.
    #[arg(long = "autoconfig-url", value_name = "URL")]
    pub autoconfig_urls: Vec<String>,
    /// Skip the autoconfig look-up.
    #[arg(long, conflicts_with = "autoconfig_urls")]
    pub no_autoconfig: bool,
    /// Submission ports to try on likely names, as PORT:SECURITY [default: 587:starttls 465:tls 25:starttls].
    #[arg(long = "smtp-port", value_name = "PORT:SECURITY")]
    pub smtp_ports: Vec<PortSpec>,
    /// IMAP ports to try on likely names, as PORT:SECURITY [default: 993:tls 143:starttls].
    #[arg(long = "imap-port", value_name = "PORT:SECURITY")]
    pub imap_ports: Vec<PortSpec>,
    /// Trust this CA (PEM) too, for servers with a private CA; it goes into the printed block.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Limit for each step (a DNS query, a connection, a reply), in milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub step_timeout_ms: u64,
    /// Limit for the whole discovery, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
}

/// Everything discovery found, and what it would configure.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub address: String,
    pub domain: String,
    pub dns: Vec<dns::DnsFinding>,
    pub autoconfig: Vec<autoconfig::Finding>,
    /// Every SMTP candidate probed, best first.
    pub smtp: Vec<Probe>,
    /// Every IMAP candidate probed, best first.
    pub imap: Vec<Probe>,
    /// The submission server chosen (verified), if any.
    pub chosen_smtp: Option<Probe>,
    /// The IMAP server chosen (verified), if any.
    pub chosen_imap: Option<Probe>,
    pub notes: Vec<String>,
    /// The account name used in `account_toml`.
    pub account: String,
    /// A ready `[accounts.NAME]` block, when a submission server was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_toml: Option<String>,
}

/// A host name as DNS and TLS take it (letters, digits, `-`, `_`; labels of 1–63; at most 253).
pub fn valid_hostname(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A host name or an IP address.
pub fn valid_host(h: &str) -> bool {
    valid_hostname(h) || h.parse::<std::net::IpAddr>().is_ok()
}

/// Untrusted text fit for one line of output (and a TOML comment): control
/// characters replaced, at most 200 characters.
pub fn excerpt(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Splits `user@domain`; the domain in lower case. Internationalized domains
/// must be given in their ASCII (xn--) form.
pub fn split_address(address: &str) -> Result<(String, String), String> {
    let (local, domain) = address.rsplit_once('@').ok_or_else(|| {
        format!(
            "`{}` is not an email address (user@domain)",
            excerpt(address)
        )
    })?;
    if local.is_empty() || local.len() > 64 || local.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "`{}` is not an email address: the part before @ must be 1-64 characters without spaces",
            excerpt(address)
        ));
    }
    let domain = domain.to_ascii_lowercase();
    if !valid_hostname(&domain) || !domain.contains('.') && domain != "localhost" {
        return Err(format!(
            "`{}` is not a mail domain (give it in ASCII; internationalized names as xn--…)",
            excerpt(&domain)
        ));
    }
    Ok((local.to_string(), domain.trim_end_matches('.').to_string()))
}

/// The account name from the domain's first label (`example` for example.com),
/// avoiding the names of modes, which accounts may not take.
pub fn account_name(domain: &str) -> String {
    let first = domain.split('.').next().unwrap_or("mail");
    let mut name: String = first
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        name = "mail".into();
    }
    if crate::config::SEND_MODES
        .iter()
        .chain(crate::config::COMPOSE_MODES)
        .any(|m| *m == name)
    {
        name.push_str("-mail");
    }
    name
}

struct Clock {
    deadline: Instant,
    step: Duration,
}

impl Clock {
    /// The step limit, cut to what is left of the whole run.
    fn step(&self) -> Duration {
        self.step
            .min(self.deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1))
    }
    fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// Runs discovery. Errors are only for what stops it before it starts
/// (a bad address, an unreadable --ca-file); everything else is in the report.
pub async fn discover(args: &DiscoverArgs) -> Result<Report, String> {
    let (_, domain) = split_address(&args.address)?;
    let address = args.address.clone();
    let clock = Clock {
        deadline: Instant::now() + Duration::from_millis(args.timeout_ms),
        step: Duration::from_millis(args.step_timeout_ms),
    };
    let tls = mailhost_tls::client_config(args.ca_file.as_deref())?;
    let resolver = dns::resolver(args.resolver, clock.step())?;
    let mut report = Report {
        address: address.clone(),
        domain: domain.clone(),
        dns: Vec::new(),
        autoconfig: Vec::new(),
        smtp: Vec::new(),
        imap: Vec::new(),
        chosen_smtp: None,
        chosen_imap: None,
        notes: Vec::new(),
        account: args.name.clone().unwrap_or_else(|| account_name(&domain)),
        account_toml: None,
    };

    // 1. DNS: the four SRV names and MX, at once.
    let names = [
        ("_submissions._tcp", Protocol::Smtp, Security::Tls),
        ("_submission._tcp", Protocol::Smtp, Security::Starttls),
        ("_imaps._tcp", Protocol::Imap, Security::Tls),
        ("_imap._tcp", Protocol::Imap, Security::Starttls),
    ];
    let srv_names: Vec<String> = names
        .iter()
        .map(|(svc, _, _)| format!("{svc}.{domain}"))
        .collect();
    let r = &resolver;
    let dns_all = async {
        let (a, b, c, d, mx) = tokio::join!(
            dns::srv(r, &srv_names[0]),
            dns::srv(r, &srv_names[1]),
            dns::srv(r, &srv_names[2]),
            dns::srv(r, &srv_names[3]),
            dns::mx(r, &domain)
        );
        (vec![a, b, c, d], mx)
    };
    let (srv_results, mx_hosts) = match tokio::time::timeout_at(clock.deadline, dns_all).await {
        Ok((srv, (mx_finding, mx_hosts))) => {
            let mut smtp_c = Vec::new();
            let mut imap_c = Vec::new();
            for ((finding, records), (svc, proto, sec)) in srv.into_iter().zip(names.iter()) {
                let source = format!("SRV {svc}.{domain}");
                for r in records {
                    let p = Probe::new(*proto, &r.target, r.port, *sec, &source);
                    match proto {
                        Protocol::Smtp => smtp_c.push(p),
                        Protocol::Imap => imap_c.push(p),
                    }
                }
                report.dns.push(finding);
            }
            report.dns.push(mx_finding);
            ((smtp_c, imap_c), mx_hosts)
        }
        Err(_) => {
            report
                .notes
                .push("the time limit ran out during the DNS look-ups".into());
            ((Vec::new(), Vec::new()), Vec::new())
        }
    };
    let (mut smtp_c, mut imap_c) = srv_results;

    // 2. Autoconfig.
    if !args.no_autoconfig && !clock.expired() {
        let urls = if args.autoconfig_urls.is_empty() {
            autoconfig::default_urls(&address, &domain)
        } else {
            args.autoconfig_urls.clone()
        };
        let client = autoconfig::client(
            tls.clone(),
            clock.step(),
            args.resolver.is_some().then(|| resolver.clone()),
        )?;
        let mut set = JoinSet::new();
        for (i, url) in urls.into_iter().enumerate().take(MAX_RECORDS) {
            let client = client.clone();
            let address = address.clone();
            set.spawn(async move { (i, autoconfig::fetch(&client, &url, &address).await) });
        }
        let mut found = Vec::new();
        let gather = async {
            while let Some(r) = set.join_next().await {
                if let Ok(x) = r {
                    found.push(x);
                }
            }
        };
        if tokio::time::timeout_at(clock.deadline, gather)
            .await
            .is_err()
        {
            report
                .notes
                .push("the time limit ran out while fetching autoconfig".into());
        }
        found.sort_by_key(|(i, _)| *i);
        for (_, f) in found {
            for s in &f.servers {
                let source = format!("autoconfig {}", f.url);
                let proto = if s.kind == "imap" {
                    Protocol::Imap
                } else {
                    Protocol::Smtp
                };
                let p = Probe::new(proto, &s.host, s.port, s.security, &source);
                match proto {
                    Protocol::Smtp => smtp_c.push(p),
                    Protocol::Imap => imap_c.push(p),
                }
            }
            report.autoconfig.push(f);
        }
    }

    // 3. Probe what DNS and autoconfig named; guess only when none of it answers.
    let tls = Arc::new(tls);
    let helo = helo_name();
    let smtp_ports = if args.smtp_ports.is_empty() {
        vec![
            PortSpec {
                port: 587,
                security: Security::Starttls,
            },
            PortSpec {
                port: 465,
                security: Security::Tls,
            },
            PortSpec {
                port: 25,
                security: Security::Starttls,
            },
        ]
    } else {
        args.smtp_ports.clone()
    };
    let imap_ports = if args.imap_ports.is_empty() {
        vec![
            PortSpec {
                port: 993,
                security: Security::Tls,
            },
            PortSpec {
                port: 143,
                security: Security::Starttls,
            },
        ]
    } else {
        args.imap_ports.clone()
    };
    let mut guess_hosts_smtp = vec![format!("smtp.{domain}"), format!("mail.{domain}")];
    guess_hosts_smtp.extend(mx_hosts.iter().cloned());
    guess_hosts_smtp.push(domain.clone());
    let mut guess_hosts_imap = vec![format!("imap.{domain}"), format!("mail.{domain}")];
    guess_hosts_imap.extend(mx_hosts.iter().cloned());
    guess_hosts_imap.push(domain.clone());

    for (proto, named, hosts, ports) in [
        (Protocol::Smtp, &mut smtp_c, guess_hosts_smtp, smtp_ports),
        (Protocol::Imap, &mut imap_c, guess_hosts_imap, imap_ports),
    ] {
        dedup(named);
        let mut probes = run_probes(
            std::mem::take(named),
            &resolver,
            &tls,
            &helo,
            &clock,
            &mut report.notes,
        )
        .await;
        if !probes.iter().any(|p| p.verified) && !clock.expired() {
            let mut guesses = Vec::new();
            for h in &hosts {
                for ps in &ports {
                    guesses.push(Probe::new(proto, h, ps.port, ps.security, "guess"));
                }
            }
            dedup(&mut guesses);
            guesses.retain(|g| !probes.iter().any(|p| p.host == g.host && p.port == g.port));
            probes.extend(
                run_probes(guesses, &resolver, &tls, &helo, &clock, &mut report.notes).await,
            );
        }
        rank(&mut probes);
        let chosen = probes.iter().find(|p| p.verified).cloned();
        match proto {
            Protocol::Smtp => {
                report.smtp = probes;
                report.chosen_smtp = chosen;
            }
            Protocol::Imap => {
                report.imap = probes;
                report.chosen_imap = chosen;
            }
        }
    }
    if clock.expired() {
        report.notes.push(format!(
            "the overall time limit ({} ms) ran out; raise --timeout-ms to look further",
            args.timeout_ms
        ));
    }
    if let Some(s) = &report.chosen_smtp {
        if s.port == 25 {
            report.notes.push(
                "only port 25 answered: that is the port for server-to-server relay, often blocked \
                 for clients and without authentication; ask the provider for its submission port"
                    .into(),
            );
        }
        if s.auth.is_empty() {
            report.notes.push(format!(
                "{}:{} offers no AUTH mechanism: it takes mail without a login (or only from some networks)",
                s.host, s.port
            ));
        }
    }
    report.account_toml = report
        .chosen_smtp
        .as_ref()
        .map(|s| account_toml(&report, s, args.ca_file.as_deref()));
    Ok(report)
}

fn helo_name() -> String {
    let name = lettre::transport::smtp::extension::ClientId::default().to_string();
    if valid_hostname(&name) {
        name
    } else {
        "[127.0.0.1]".to_string()
    }
}

fn dedup(v: &mut Vec<Probe>) {
    let mut seen: Vec<(String, u16)> = Vec::new();
    v.retain(|p| {
        let key = (p.host.clone(), p.port);
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
}

async fn run_probes(
    candidates: Vec<Probe>,
    resolver: &hickory_resolver::TokioResolver,
    tls: &Arc<rustls::ClientConfig>,
    helo: &str,
    clock: &Clock,
    notes: &mut Vec<String>,
) -> Vec<Probe> {
    let mut candidates = candidates;
    if candidates.len() > MAX_PROBES {
        notes.push(format!(
            "more than {MAX_PROBES} candidates; the rest were not probed"
        ));
        candidates.truncate(MAX_PROBES);
    }
    let mut set = JoinSet::new();
    let count = candidates.len();
    for (i, mut p) in candidates.into_iter().enumerate() {
        let resolver = resolver.clone();
        let tls = tls.clone();
        let helo = helo.to_string();
        let step = clock.step();
        set.spawn(async move {
            let addresses =
                match tokio::time::timeout(step, dns::addresses(&resolver, &p.host)).await {
                    Ok(Ok(a)) => a,
                    Ok(Err(e)) => {
                        p.error = Some(e);
                        return (i, p);
                    }
                    Err(_) => {
                        p.error = Some(format!(
                            "{}: no DNS answer within {} ms",
                            p.host,
                            step.as_millis()
                        ));
                        return (i, p);
                    }
                };
            let target = probe::Target {
                addresses: &addresses,
                tls,
                step,
                helo: &helo,
            };
            let p = match p.protocol {
                Protocol::Smtp => probe::smtp(p, &target).await,
                Protocol::Imap => probe::imap(p, &target).await,
            };
            (i, p)
        });
    }
    let mut done: Vec<(usize, Probe)> = Vec::with_capacity(count);
    let gather = async {
        while let Some(r) = set.join_next().await {
            if let Ok(x) = r {
                done.push(x);
            }
        }
    };
    if tokio::time::timeout_at(clock.deadline, gather)
        .await
        .is_err()
    {
        notes.push(format!(
            "the time limit ran out with {} probe(s) unfinished",
            count.saturating_sub(done.len())
        ));
    }
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, p)| p).collect()
}

/// Best first: verified; offers AUTH; where it came from (SRV, autoconfig,
/// guess, in the order found); implicit TLS over STARTTLS (RFC 8314); port 25 last.
fn rank(v: &mut [Probe]) {
    let source_rank = |p: &Probe| {
        if p.source.starts_with("SRV") {
            0
        } else if p.source.starts_with("autoconfig") {
            1
        } else {
            2
        }
    };
    v.sort_by_key(|p| {
        (
            !p.verified,
            p.port == 25,
            p.auth.is_empty(),
            source_rank(p),
            p.security,
        )
    });
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The `[accounts.NAME]` block for the chosen submission server, with what was
/// verified in comments (untrusted server text cleaned to one line).
pub fn account_toml(report: &Report, s: &Probe, ca_file: Option<&std::path::Path>) -> String {
    let name = &report.account;
    let key = if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        name.clone()
    } else {
        toml_str(name)
    };
    let tls = match &s.tls {
        Some(t) if t.verified => format!(
            "{}, {}, certificate verified",
            s.security.describe(),
            t.version
        ),
        _ => s.security.describe().to_string(),
    };
    let env = format!(
        "{}_SMTP_PASSWORD",
        name.to_ascii_uppercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    );
    let mut out = String::new();
    out.push_str(&format!(
        "# found by `mailhost discover {}`: {} from {}\n",
        excerpt(&report.address),
        excerpt(&format!("{}:{}", s.host, s.port)),
        excerpt(&s.source)
    ));
    out.push_str(&format!(
        "# verified: {tls}; greeting: {}\n",
        excerpt(&s.greeting)
    ));
    if s.auth.is_empty() {
        out.push_str("# the server offered no AUTH mechanism\n");
    } else {
        out.push_str(&format!("# AUTH offered: {}\n", s.auth.join(" ")));
    }
    if let Some(i) = &report.chosen_imap {
        out.push_str(&format!(
            "# IMAP (same mailbox): {}:{} {}{}\n",
            i.host,
            i.port,
            i.security.describe(),
            if i.auth.is_empty() {
                String::new()
            } else {
                format!(", AUTH {}", i.auth.join(" "))
            }
        ));
    }
    out.push_str(&format!("[accounts.{key}]\n"));
    out.push_str("plugin = \"smtp\"\n");
    out.push_str(&format!("from = {}\n", toml_str(&report.address)));
    out.push_str(&format!("host = {}\n", toml_str(&s.host)));
    out.push_str(&format!("port = {}\n", s.port));
    out.push_str(&format!("security = \"{}\"\n", s.security.name()));
    if let Some(ca) = ca_file {
        out.push_str(&format!("ca_file = {}\n", toml_str(&ca.to_string_lossy())));
    }
    let only_oauth =
        !s.auth.is_empty() && s.auth.iter().all(|m| m == "XOAUTH2" || m == "OAUTHBEARER");
    if s.auth.is_empty() {
        out.push_str("auth = \"none\"\n");
    } else if only_oauth {
        out.push_str("auth = \"required\"\n");
        out.push_str("mechanism = \"xoauth2\"\n");
        out.push_str(&format!("username = {}\n", toml_str(&report.address)));
        out.push_str("# the server takes OAuth2 only: name an [oauth.NAME] client\n");
        out.push_str("# oauth = \"NAME\"\n");
    } else {
        out.push_str("auth = \"required\"\n");
        out.push_str(&format!("username = {}\n", toml_str(&report.address)));
        out.push_str(&format!("password = \"env:{env}\"\n"));
    }
    out
}

/// The plain-text report: what was found, then the block (or why there is none).
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!("discovery for {}\n", report.address));
    for d in &report.dns {
        let what = if d.records.is_empty() {
            d.problems.join("; ")
        } else {
            let mut s = d.records.join(", ");
            if !d.problems.is_empty() {
                s.push_str(&format!(" ({})", d.problems.join("; ")));
            }
            s
        };
        out.push_str(&format!("  dns  {:<40} {}\n", d.query, excerpt(&what)));
    }
    for a in &report.autoconfig {
        let what = match &a.error {
            Some(e) => e.clone(),
            None => {
                let s: Vec<String> = a
                    .servers
                    .iter()
                    .map(|s| format!("{} {}:{} {}", s.kind, s.host, s.port, s.security.name()))
                    .collect();
                if s.is_empty() {
                    "no SMTP or IMAP server in it".into()
                } else {
                    s.join(", ")
                }
            }
        };
        out.push_str(&format!(
            "  autoconfig {}\n       {}\n",
            excerpt(&a.url),
            excerpt(&what)
        ));
    }
    for p in report.smtp.iter().chain(report.imap.iter()) {
        let mark = if p.verified { "ok  " } else { "FAIL" };
        let proto = match p.protocol {
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
        };
        let mut detail = match &p.error {
            Some(e) => excerpt(e),
            None => {
                let tls = p
                    .tls
                    .as_ref()
                    .map(|t| format!(", {}", t.version))
                    .unwrap_or_default();
                format!(
                    "{}{tls}, AUTH {}",
                    p.security.describe(),
                    if p.auth.is_empty() {
                        "none".to_string()
                    } else {
                        p.auth.join(" ")
                    }
                )
            }
        };
        detail = format!("{detail} [{}]", excerpt(&p.source));
        out.push_str(&format!(
            "  [{mark}] {proto} {}:{} {detail}\n",
            p.host, p.port
        ));
    }
    for n in &report.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    match &report.account_toml {
        Some(t) => {
            out.push('\n');
            out.push_str(t);
        }
        None => out.push_str(
            "\nno submission server could be verified; nothing to configure \
             (see above why each candidate failed)\n",
        ),
    }
    out
}

/// `mailhost discover`: runs discovery on its own small runtime and prints the
/// report (or `--json`). Exit 0 when a submission server was verified, 69 when
/// none was, 64 for a bad address or option.
pub fn cmd(args: &DiscoverArgs, json: bool) -> u8 {
    use std::io::Write as _;
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "mailhost: discover: cannot start a runtime: {e}"
            );
            return crate::cli::exit::UNAVAILABLE;
        }
    };
    match rt.block_on(discover(args)) {
        Ok(report) => {
            let code = if report.chosen_smtp.is_some() {
                crate::cli::exit::OK
            } else {
                crate::cli::exit::UNAVAILABLE
            };
            let mut o = std::io::stdout().lock();
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => {
                        let _ = writeln!(o, "{s}");
                    }
                    Err(e) => {
                        let _ = writeln!(std::io::stderr(), "mailhost: cannot print JSON: {e}");
                    }
                }
            } else {
                let _ = write!(o, "{}", render(&report));
            }
            if code != crate::cli::exit::OK {
                let _ = writeln!(
                    std::io::stderr(),
                    "mailhost: discover: no submission server for {} could be verified",
                    excerpt(&report.address)
                );
            }
            code
        }
        Err(e) => {
            let code = crate::cli::exit::USAGE;
            let _ = writeln!(std::io::stderr(), "mailhost: discover: {e}");
            if json {
                let v = serde_json::json!({"error": {"code": "usage", "exit_code": code, "message": e}});
                let _ = writeln!(std::io::stdout(), "{v}");
            }
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        assert_eq!(
            split_address("Jo@Example.COM").unwrap(),
            ("Jo".to_string(), "example.com".to_string())
        );
        for bad in [
            "jo",
            "@example.com",
            "jo@",
            "jo@exa mple.com",
            "jo@com",
            "jo@a..b",
            "jo@-\n.com",
        ] {
            assert!(split_address(bad).is_err(), "{bad}");
        }
        assert_eq!(account_name("example.com"), "example");
        assert_eq!(
            account_name("smtp.example.com"),
            "smtp-mail",
            "a mode name is not an account name"
        );
        assert_eq!(account_name("graph.example"), "graph-mail");
    }

    #[test]
    fn server_text_cannot_add_lines_to_the_block() {
        let mut p = Probe::new(
            Protocol::Smtp,
            "mail.example.com",
            465,
            Security::Tls,
            "guess",
        );
        p.verified = true;
        p.greeting = "x ESMTP\n[accounts.evil]\nhost = \"attacker\"".into();
        p.auth = vec!["PLAIN".into()];
        let report = Report {
            address: "jo@example.com".into(),
            domain: "example.com".into(),
            dns: Vec::new(),
            autoconfig: Vec::new(),
            smtp: vec![p.clone()],
            imap: Vec::new(),
            chosen_smtp: Some(p.clone()),
            chosen_imap: None,
            notes: Vec::new(),
            account: "example".into(),
            account_toml: None,
        };
        let block = account_toml(&report, &p, None);
        let parsed: toml::Table = block.parse().unwrap();
        let accounts = parsed["accounts"].as_table().unwrap();
        assert_eq!(accounts.keys().collect::<Vec<_>>(), ["example"], "{block}");
        let a = accounts["example"].as_table().unwrap();
        assert_eq!(a["host"].as_str(), Some("mail.example.com"));
        assert_eq!(a["port"].as_integer(), Some(465));
        assert_eq!(a["security"].as_str(), Some("tls"));
        assert_eq!(a["auth"].as_str(), Some("required"));
        assert_eq!(a["password"].as_str(), Some("env:EXAMPLE_SMTP_PASSWORD"));
    }

    #[test]
    fn port_specs() {
        assert_eq!(
            "2465:tls".parse::<PortSpec>().unwrap(),
            PortSpec {
                port: 2465,
                security: Security::Tls
            }
        );
        for bad in ["587", "0:tls", "70000:tls", "587:ssl", ":tls"] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn excerpt_keeps_one_line() {
        assert_eq!(excerpt("a\r\nb\u{1b}[31m"), "a??b?[31m");
        assert_eq!(excerpt(&"x".repeat(500)).chars().count(), 201);
    }

    #[test]
    fn ranking_prefers_verified_then_auth_then_srv_then_implicit_tls() {
        let mut a = Probe::new(Protocol::Smtp, "a", 587, Security::Starttls, "guess");
        a.verified = true;
        a.auth = vec!["PLAIN".into()];
        let mut b = Probe::new(
            Protocol::Smtp,
            "b",
            465,
            Security::Tls,
            "SRV _submissions._tcp.x",
        );
        b.verified = true;
        b.auth = vec!["PLAIN".into()];
        let c = Probe::new(
            Protocol::Smtp,
            "c",
            465,
            Security::Tls,
            "SRV _submissions._tcp.x",
        );
        let mut d = Probe::new(
            Protocol::Smtp,
            "d",
            25,
            Security::Starttls,
            "SRV _submission._tcp.x",
        );
        d.verified = true;
        d.auth = vec!["PLAIN".into()];
        let mut v = vec![c, d, a, b];
        rank(&mut v);
        let order: Vec<&str> = v.iter().map(|p| p.host.as_str()).collect();
        assert_eq!(order, ["b", "a", "d", "c"]);
    }
}
