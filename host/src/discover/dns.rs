//! DNS for discovery: RFC 6186 SRV records, MX, and the addresses of the
//! names to probe, through hickory's resolver (the system's configuration, or
//! one server given with `--resolver`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use serde::Serialize;

use super::{valid_hostname, MAX_RECORDS};

/// Most addresses tried for one name.
const MAX_ADDRESSES: usize = 4;

/// One SRV record as found (RFC 2782): a target of "." means the service is not offered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// What one query found.
#[derive(Debug, Clone, Serialize)]
pub struct DnsFinding {
    /// e.g. `SRV _submissions._tcp.example.com`
    pub query: String,
    /// Records in the order they are to be used, as text.
    pub records: Vec<String>,
    /// Why the answer was not used (no record, timeout, a refused record).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The resolver: the system's, or the one server `--resolver` names (UDP, TCP on truncation).
pub fn resolver(server: Option<SocketAddr>, timeout: Duration) -> Result<TokioResolver, String> {
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 1;
    match server {
        Some(addr) => {
            let mut config = ResolverConfig::new();
            config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            opts.use_hosts_file = ResolveHosts::Never;
            Ok(
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                    .with_options(opts)
                    .build(),
            )
        }
        None => {
            let builder = TokioResolver::builder_tokio().map_err(|e| {
                format!(
                    "cannot read the system's DNS configuration (/etc/resolv.conf): {e}; \
                     name a DNS server with --resolver ADDR:PORT"
                )
            })?;
            Ok(builder.with_options(opts).build())
        }
    }
}

fn describe(e: &ResolveError) -> String {
    if e.is_nx_domain() {
        "no such name".to_string()
    } else if e.is_no_records_found() {
        "no record".to_string()
    } else {
        format!("lookup failed: {e}")
    }
}

/// SRV records of `name`, usable ones sorted by priority then weight (highest
/// first). A lone "." target means the service is explicitly not offered.
pub async fn srv(resolver: &TokioResolver, name: &str) -> (DnsFinding, Vec<SrvRecord>) {
    let mut finding = DnsFinding {
        query: format!("SRV {name}"),
        records: Vec::new(),
        problems: Vec::new(),
    };
    let lookup = match resolver.srv_lookup(format!("{name}.")).await {
        Ok(l) => l,
        Err(e) => {
            finding.problems.push(describe(&e));
            return (finding, Vec::new());
        }
    };
    let mut out = Vec::new();
    for (i, r) in lookup.iter().enumerate() {
        if i >= MAX_RECORDS {
            finding.problems.push(format!(
                "more than {MAX_RECORDS} records; the rest are ignored"
            ));
            break;
        }
        let target = r.target().to_ascii();
        let target = target.trim_end_matches('.').to_ascii_lowercase();
        finding.records.push(format!(
            "{} {} {} {}.",
            r.priority(),
            r.weight(),
            r.port(),
            target
        ));
        if target.is_empty() {
            finding
                .problems
                .push("target \".\": the domain says it does not offer this service".to_string());
            continue;
        }
        if r.port() == 0 {
            finding.problems.push(format!("{target}: port 0 ignored"));
            continue;
        }
        if !valid_hostname(&target) {
            finding.problems.push(format!(
                "target `{}` is not a host name; ignored",
                target.escape_debug()
            ));
            continue;
        }
        out.push(SrvRecord {
            priority: r.priority(),
            weight: r.weight(),
            port: r.port(),
            target,
        });
    }
    out.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    (finding, out)
}

/// MX hosts of `domain` by preference. A null MX (RFC 7505) yields none.
pub async fn mx(resolver: &TokioResolver, domain: &str) -> (DnsFinding, Vec<String>) {
    let mut finding = DnsFinding {
        query: format!("MX {domain}"),
        records: Vec::new(),
        problems: Vec::new(),
    };
    let lookup = match resolver.mx_lookup(format!("{domain}.")).await {
        Ok(l) => l,
        Err(e) => {
            finding.problems.push(describe(&e));
            return (finding, Vec::new());
        }
    };
    let mut hosts: Vec<(u16, String)> = Vec::new();
    for (i, r) in lookup.iter().enumerate() {
        if i >= MAX_RECORDS {
            finding.problems.push(format!(
                "more than {MAX_RECORDS} records; the rest are ignored"
            ));
            break;
        }
        let host = r.exchange().to_ascii();
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        finding
            .records
            .push(format!("{} {}.", r.preference(), host));
        if host.is_empty() {
            finding
                .problems
                .push("null MX (RFC 7505): the domain receives no mail".to_string());
            continue;
        }
        if !valid_hostname(&host) {
            finding.problems.push(format!(
                "exchange `{}` is not a host name; ignored",
                host.escape_debug()
            ));
            continue;
        }
        hosts.push((r.preference(), host));
    }
    hosts.sort();
    let mut names: Vec<String> = Vec::new();
    for (_, h) in hosts {
        if !names.contains(&h) {
            names.push(h);
        }
    }
    (finding, names)
}

/// The addresses of `host` (an IP literal is its own address), at most a few.
pub async fn addresses(resolver: &TokioResolver, host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    match resolver.lookup_ip(format!("{host}.")).await {
        Ok(l) => {
            let mut v: Vec<IpAddr> = l.iter().take(MAX_ADDRESSES).collect();
            // IPv4 first: the most likely to be reachable from a server.
            v.sort_by_key(|ip| ip.is_ipv6());
            if v.is_empty() {
                Err(format!("{host} has no address"))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(format!("{host}: {}", describe(&e))),
    }
}
