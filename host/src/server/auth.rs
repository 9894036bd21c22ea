//! API tokens: `[api.tokens.NAME] hash = "sha256:HEX"`, scopes `send` and
//! `admin`, optionally bound to tenants and users. Only the hash is stored;
//! `mailhost api-token NAME` makes a token and prints its config lines.
//! The tokens follow the config in use: a reload (SIGHUP) or a save on the
//! admin page adds, rotates and revokes them without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::problem::Problem;

/// `[api]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Where `mailhost serve` listens when `--bind` is not given (default 127.0.0.1:8025).
    #[serde(default)]
    pub bind: Option<String>,
    /// HTTPS: the certificate chain (PEM) the API and the admin page serve
    /// (relative to the config's folder); with `tls_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    /// The certificate's private key (PEM, unencrypted; keep it readable
    /// by the service only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenSettings>,
}

/// `[api.tokens.NAME]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// `sha256:` and the hex SHA-256 of the token.
    pub hash: String,
    /// `send` (submit, read its own messages), `admin` (everything).
    pub scopes: Vec<String>,
    /// The tenants it may act for (empty: any).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// The users it may act for (empty: any).
    #[serde(default)]
    pub users: Vec<String>,
}

pub const SCOPES: &[&str] = &["send", "admin"];

impl ApiSettings {
    /// What is wrong with the section: (message, hint) per problem.
    pub fn problems(&self, tenants: &[&str], users: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, t) in &self.tokens {
            if parse_hash(&t.hash).is_none() {
                out.push((
                    format!("[api.tokens.{name}] hash must be `sha256:` and 64 hex digits"),
                    "make a token and its hash with `mailhost api-token NAME`".to_string(),
                ));
            }
            if t.scopes.is_empty() {
                out.push((
                    format!("[api.tokens.{name}] has no scopes"),
                    "valid scopes: send, admin".to_string(),
                ));
            }
            for s in &t.scopes {
                if !SCOPES.contains(&s.as_str()) {
                    out.push((
                        format!("[api.tokens.{name}] scope `{s}` is unknown"),
                        "valid scopes: send, admin".to_string(),
                    ));
                }
            }
            for x in &t.tenants {
                if !tenants.contains(&x.as_str()) {
                    out.push((
                        format!("[api.tokens.{name}] tenant `{x}` is not configured"),
                        known("tenants", tenants),
                    ));
                }
            }
            for x in &t.users {
                if !users.contains(&x.as_str()) {
                    out.push((
                        format!("[api.tokens.{name}] user `{x}` is not configured"),
                        known("users", users),
                    ));
                }
            }
        }
        if let Some(b) = &self.bind {
            if b.parse::<std::net::SocketAddr>().is_err() {
                out.push((
                    format!("[api] bind `{b}` is not an address:port"),
                    "write it like 127.0.0.1:8025".to_string(),
                ));
            }
        }
        out
    }
}

fn parse_hash(h: &str) -> Option<[u8; 32]> {
    let hex = h.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The hint for a name that is not configured: the ones that are.
fn known(what: &str, names: &[&str]) -> String {
    if names.is_empty() {
        format!("the config has no [{what}]; add one, or drop the binding")
    } else {
        format!("configured: {}", names.join(", "))
    }
}

/// `sha256:HEX` of a token.
pub fn hash_token(token: &str) -> String {
    format!("sha256:{}", crate::digest::sha256_hex(token.as_bytes()))
}

/// A new random token (256 bits, URL-safe).
pub fn new_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    format!(
        "mh_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A token that authenticated a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub admin: bool,
    pub send: bool,
    pub tenants: Vec<String>,
    pub users: Vec<String>,
}

impl Caller {
    /// `Ok` when the token has the `send` scope (or `admin`, which includes it).
    pub fn need_send(&self) -> Result<(), Problem> {
        self.need(self.send, "send")
    }

    /// `Ok` when the token has the `admin` scope.
    pub fn need_admin(&self) -> Result<(), Problem> {
        self.need(self.admin, "admin")
    }

    fn need(&self, has: bool, scope: &str) -> Result<(), Problem> {
        if has {
            return Ok(());
        }
        Err(Problem::forbidden(
            "scope",
            format!("API token `{}` lacks the `{scope}` scope", self.name),
        ))
    }

    /// The tenant a request acts for: the one it names (if the token may), or
    /// the token's only tenant.
    pub fn tenant(&self, asked: Option<String>) -> Result<Option<String>, Problem> {
        bound("tenant", &self.name, &self.tenants, asked)
    }

    pub fn user(&self, asked: Option<String>) -> Result<Option<String>, Problem> {
        bound("user", &self.name, &self.users, asked)
    }

    /// May this caller see / change a stored message of `tenant` / `user`?
    pub fn may_touch(&self, tenant: Option<&str>, user: Option<&str>) -> bool {
        let ok = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        self.admin || (ok(&self.tenants, tenant) && ok(&self.users, user))
    }
}

fn bound(
    what: &str,
    token: &str,
    allowed: &[String],
    asked: Option<String>,
) -> Result<Option<String>, Problem> {
    match asked {
        Some(v) if allowed.is_empty() || allowed.contains(&v) => Ok(Some(v)),
        Some(v) => Err(Problem::forbidden(
            "token-not-bound",
            format!(
                "API token `{token}` may not act for {what} `{}`; it may act for: {}",
                crate::limits::shown(&v),
                allowed.join(", ")
            ),
        )),
        None if allowed.len() == 1 => Ok(Some(allowed[0].clone())),
        None if allowed.is_empty() => Ok(None),
        None => Err(Problem::bad_request(
            "missing-field",
            format!("API token `{token}` acts for several {what}s: name one with `{what}`"),
        )),
    }
}

/// The configured tokens, hashes decoded.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<([u8; 32], Caller)>);

impl Tokens {
    pub fn new(api: &ApiSettings) -> Tokens {
        Tokens(
            api.tokens
                .iter()
                .filter_map(|(name, t)| {
                    let h = parse_hash(&t.hash)?;
                    Some((
                        h,
                        Caller {
                            name: name.clone(),
                            admin: t.scopes.iter().any(|s| s == "admin"),
                            send: t.scopes.iter().any(|s| s == "send" || s == "admin"),
                            tenants: t.tenants.clone(),
                            users: t.users.clone(),
                        },
                    ))
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The caller behind an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> Result<Caller, Problem> {
        let Some(v) = authorization else {
            return Err(Problem::unauthorized(
                "send `Authorization: Bearer TOKEN` (a token from [api.tokens] in the config)",
            ));
        };
        let Some(token) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        else {
            return Err(Problem::unauthorized(
                "the Authorization header must be `Bearer TOKEN`",
            ));
        };
        self.find(&digest(token))
            .ok_or_else(|| Problem::unauthorized("the API token is not known (or was revoked)"))
    }

    /// The caller whose token has this digest.
    pub fn find(&self, given: &[u8; 32]) -> Option<Caller> {
        // Compare with every hash without stopping early.
        let mut found = None;
        for (h, c) in &self.0 {
            let diff = h
                .iter()
                .zip(given.iter())
                .fold(0u8, |a, (x, y)| a | (x ^ y));
            if diff == 0 && found.is_none() {
                found = Some(c.clone());
            }
        }
        found
    }
}

/// The digest a token is known by (as `[api.tokens] hash` holds it).
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// The tokens of the engine in use, decoded once per engine: when a reload
/// or a save swaps the engine, the next request is checked against the new
/// config's tokens.
#[derive(Debug)]
pub struct LiveTokens {
    current: RwLock<(Weak<crate::engine::Engine>, Arc<Tokens>)>,
}

impl Default for LiveTokens {
    fn default() -> Self {
        Self {
            current: RwLock::new((Weak::new(), Arc::new(Tokens::default()))),
        }
    }
}

impl LiveTokens {
    /// The tokens of `engine`'s config.
    pub fn of(&self, engine: &Arc<crate::engine::Engine>) -> Arc<Tokens> {
        {
            let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
            // The Weak keeps the allocation, so an equal pointer is this engine.
            if std::ptr::eq(cur.0.as_ptr(), Arc::as_ptr(engine)) {
                return cur.1.clone();
            }
        }
        let fresh = Arc::new(Tokens::new(&engine.settings().api));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            (Arc::downgrade(engine), fresh.clone());
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> ApiSettings {
        let mut tokens = BTreeMap::new();
        tokens.insert(
            "erp".to_string(),
            TokenSettings {
                hash: hash_token("secret-1"),
                scopes: vec!["send".into()],
                tenants: vec!["acme".into()],
                users: vec![],
            },
        );
        ApiSettings {
            tokens,
            ..ApiSettings::default()
        }
    }

    #[test]
    fn tokens_are_checked_by_hash() {
        let t = Tokens::new(&api());
        let c = t.check(Some("Bearer secret-1")).unwrap();
        assert_eq!(c.name, "erp");
        assert!(c.send && !c.admin);
        assert_eq!(
            t.check(Some("Bearer nope")).unwrap_err().code,
            "unauthorized"
        );
        assert_eq!(t.check(None).unwrap_err().code, "unauthorized");
        assert_eq!(
            t.check(Some("Basic eA==")).unwrap_err().code,
            "unauthorized"
        );
    }

    #[test]
    fn a_bound_token_acts_only_for_its_tenant() {
        let c = Tokens::new(&api()).check(Some("Bearer secret-1")).unwrap();
        assert_eq!(c.tenant(None).unwrap().as_deref(), Some("acme"));
        assert_eq!(
            c.tenant(Some("acme".into())).unwrap().as_deref(),
            Some("acme")
        );
        assert_eq!(
            c.tenant(Some("globex".into())).unwrap_err().code,
            "token-not-bound"
        );
        assert!(c.may_touch(Some("acme"), None));
        assert!(!c.may_touch(Some("globex"), None));
        assert!(!c.may_touch(None, None));
    }

    #[test]
    fn bad_sections_are_named() {
        let mut a = api();
        a.tokens.get_mut("erp").unwrap().hash = "md5:00".into();
        a.tokens.get_mut("erp").unwrap().scopes = vec!["root".into()];
        let p = a.problems(&["acme"], &[]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].0.contains("[api.tokens.erp] hash"));
        assert!(p[1].0.contains("scope `root`"));
        let fresh = new_token();
        assert!(parse_hash(&hash_token(&fresh)).is_some());
    }
}
