//! The state of an opened SMTP account that its tasks share: settings, the
//! pool, the TLS connector, the status state machine; connecting (POP before
//! SMTP, TLS, AUTH) and delivering a [`Job`] with its [`Receipt`].

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use lettre::transport::smtp::extension::ClientId;
use lettre::Address;
use mailhost_plugin_api::wire;
use mailhost_plugin_api::{
    ConnState, ConnectionStatus, ErrorClass, Host, PluginError, Receipt, RejectedRecipient,
};
use tokio_rustls::TlsConnector;

use crate::auth::{self, Credentials, Secret};
use crate::config::{AuthPolicy, Security, SmtpConfig, EXCHANGE_BASIC_AUTH_WARNING};
use crate::job::{Job, Who};
use crate::pool::{Pool, PROBE_AFTER};
use crate::session::{self, Session, Tx, TxFailure, TxOutcome};
use crate::stream::SmtpStream;
use crate::{pop, tls};

/// State shared by the runtime's tasks.
pub struct Shared {
    pub cfg: SmtpConfig,
    pub host: Host,
    pub connector: TlsConnector,
    pub client_id: ClientId,
    pub pool: Pool,
    pub(crate) status: Mutex<ConnectionStatus>,
    pub(crate) closed: AtomicBool,
    /// The background runtime: QUITs nobody waits for, the idle reaper.
    bg: tokio::runtime::Handle,
}

impl Shared {
    pub fn new(
        cfg: SmtpConfig,
        host: Host,
        bg: tokio::runtime::Handle,
    ) -> Result<Self, PluginError> {
        let connector = tls::connector(&cfg)?;
        let client_id = match &cfg.helo_name {
            Some(n) => ClientId::Domain(n.clone()),
            None => ClientId::default(),
        };
        if cfg.basic_auth_to_exchange_online() {
            tracing::warn!(host = %cfg.host, "{EXCHANGE_BASIC_AUTH_WARNING}");
        }
        Ok(Self {
            pool: Pool::new(cfg.pool),
            status: Mutex::new(ConnectionStatus::new(ConnState::NOT_CONNECTED, "")),
            closed: AtomicBool::new(false),
            bg,
            connector,
            client_id,
            host,
            cfg,
        })
    }

    pub fn addr(&self) -> String {
        self.cfg.addr()
    }

    fn set_status(&self, state: ConnState, reason: &str) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if s.state == ConnState::STOPPED {
            return;
        }
        if s.state != state || s.reason.as_str() != reason {
            *s = ConnectionStatus::new(state, reason);
        }
    }

    pub fn status(&self) -> ConnectionStatus {
        let s = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let quiet = s.state == ConnState::OPERATING || s.state == ConnState::NOT_CONNECTED;
        if quiet && self.cfg.basic_auth_to_exchange_online() && s.reason.is_empty() {
            return ConnectionStatus {
                reason: EXCHANGE_BASIC_AUTH_WARNING.into(),
                ..s
            };
        }
        s
    }

    pub(crate) fn operating(&self) {
        self.set_status(ConnState::OPERATING, "");
    }

    pub(crate) fn unable(&self, e: &PluginError) {
        self.set_status(ConnState::UNABLE_TO_CONNECT, e.message());
    }

    /// Resolves a secret reference through the host (off the async workers).
    pub async fn secret(&self, reference: &str) -> Result<String, PluginError> {
        let host = self.host.clone();
        let r = reference.to_string();
        tokio::task::spawn_blocking(move || host.secret(&r))
            .await
            .map_err(|e| PluginError::permanent(format!("secret lookup failed: {e}")))?
    }

    /// An XOAUTH2 access token from the host's broker.
    pub async fn token(&self, force_refresh: bool) -> Result<String, PluginError> {
        let Some(provider) = self.cfg.oauth.clone() else {
            return Err(PluginError::config(
                "no `oauth` client is configured for XOAUTH2",
            ));
        };
        let host = self.host.clone();
        let scope = self.cfg.oauth_scope.clone();
        tokio::task::spawn_blocking(move || host.token(&provider, &scope, force_refresh))
            .await
            .map_err(|e| PluginError::permanent(format!("token request failed: {e}")))?
    }

    /// The credentials for `who`, or `None` when this connection does not authenticate.
    pub async fn credentials(&self, who: &Who) -> Result<Option<Credentials>, PluginError> {
        if self.cfg.auth == AuthPolicy::None {
            return Ok(None);
        }
        let creds = match who {
            // "Username required, password optional" (auth = "optional"): a
            // user without a password sends unauthenticated, as that user —
            // never with the account's own credentials (that would send as
            // someone else). PLAIN forbids an empty password (RFC 4616).
            Who::User {
                username,
                password_ref,
            } if password_ref.is_empty() => {
                if self.cfg.auth == AuthPolicy::Required {
                    return Err(PluginError::config(format!(
                        "auth = \"required\" but user {username} has no password: set `password` in their [users.NAME.accounts.ACCOUNT] section, or use auth = \"optional\" to let them send unauthenticated"
                    )));
                }
                return Ok(None);
            }
            Who::User {
                username,
                password_ref,
            } => Some(Credentials {
                username: username.clone(),
                secret: Secret::Password({
                    let pw = self.secret(password_ref).await.map_err(|e| {
                        PluginError::config(format!(
                            "per-user password for {username}: {}",
                            e.message()
                        ))
                    })?;
                    wire::secret("smtp", &format!("the per-user password of {username}"), &pw)?;
                    pw
                }),
            }),
            Who::Account => match (&self.cfg.username, &self.cfg.password_ref, &self.cfg.oauth) {
                (Some(u), _, Some(_)) => Some(Credentials {
                    username: u.clone(),
                    secret: Secret::Token(self.token(false).await?),
                }),
                (Some(u), Some(p), None) => Some(Credentials {
                    username: u.clone(),
                    secret: Secret::Password({
                        let pw = self.secret(p).await.map_err(|e| {
                            PluginError::config(format!("smtp setting `password`: {}", e.message()))
                        })?;
                        wire::secret("smtp", "setting `password`", &pw)?;
                        pw
                    }),
                }),
                _ => None,
            },
        };
        if creds.is_none() && self.cfg.auth == AuthPolicy::Required {
            return Err(PluginError::config(
                "auth = \"required\" but no credentials: set `username` with `password` or `oauth`, or pass per-user credentials",
            ));
        }
        Ok(creds)
    }

    /// POP-before-SMTP, when configured.
    pub async fn pop_login(&self) -> Result<Option<String>, PluginError> {
        let Some(p) = &self.cfg.pop else {
            return Ok(None);
        };
        let password = self.secret(&p.password_ref).await.map_err(|e| {
            PluginError::config(format!(
                "smtp setting `pop_before_smtp.password`: {}",
                e.message()
            ))
        })?;
        wire::secret("smtp", "setting `pop_before_smtp.password`", &password)?;
        pop::login(p, &password, &self.connector, self.cfg.timeout)
            .await
            .map(Some)
    }

    /// TCP (and implicit TLS) to the server, greeting and EHLO; no STARTTLS or AUTH yet.
    pub async fn open_session(&self) -> Result<Session, PluginError> {
        let addr = self.addr();
        let addrs = session::resolve(&self.cfg.host, self.cfg.port, self.cfg.timeout).await?;
        let (tcp, peer) = session::tcp_connect(&addrs, &addr, self.cfg.timeout).await?;
        let stream = if self.cfg.security == Security::Tls {
            let name = tls::server_name(&self.cfg.host)?;
            let t =
                session::tls_handshake(tcp, &self.connector, name, &addr, self.cfg.timeout).await?;
            SmtpStream::tls(t, peer)
        } else {
            SmtpStream::plain(tcp, peer)
        };
        Session::start(stream, addr, self.client_id.clone(), self.cfg.timeout).await
    }

    /// STARTTLS when configured.
    pub async fn secure(&self, s: &mut Session) -> Result<(), PluginError> {
        if self.cfg.security == Security::Starttls {
            let name = tls::server_name(&self.cfg.host)?;
            s.starttls(&self.connector, name).await?;
        }
        Ok(())
    }

    /// AUTH with `creds` (refreshing an XOAUTH2 token once when it is refused).
    pub async fn login(
        &self,
        s: &mut Session,
        creds: Option<Credentials>,
    ) -> Result<Option<String>, PluginError> {
        let Some(mut creds) = creds else {
            return Ok(None);
        };
        if s.caps.auth.is_empty() {
            if self.cfg.auth == AuthPolicy::Required {
                return Err(PluginError::config(format!(
                    "{} offers no AUTH on this connection and auth = \"required\"{}",
                    s.addr,
                    if s.is_tls() {
                        ""
                    } else {
                        " (many servers offer AUTH only after STARTTLS)"
                    }
                )));
            }
            tracing::warn!(server = %s.addr, "smtp: the server offers no AUTH; sending without authentication");
            return Ok(None);
        }
        let m = auth::choose(
            self.cfg.mechanism,
            &creds,
            &s.caps.auth,
            s.is_tls(),
            self.cfg.allow_plaintext_auth,
            &s.addr,
        )?;
        match auth::authenticate(s, m, &creds).await {
            Ok(r) => Ok(Some(format!("AUTH {}: {r}", m.name()))),
            Err(refused) if refused.token_refused && matches!(creds.secret, Secret::Token(_)) => {
                tracing::info!(server = %s.addr, "smtp: XOAUTH2 token refused; fetching a fresh one");
                creds.secret = Secret::Token(self.token(true).await?);
                if !s.usable() {
                    return Err(refused.error);
                }
                auth::authenticate(s, m, &creds)
                    .await
                    .map(|r| Some(format!("AUTH {} (fresh token): {r}", m.name())))
                    .map_err(|r| r.error)
            }
            Err(refused) => Err(refused.error),
        }
    }

    /// A ready session: POP-before-SMTP, connect, STARTTLS, AUTH.
    pub async fn connect(&self, who: &Who) -> Result<Session, PluginError> {
        {
            let s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            let st = s.state;
            drop(s);
            if st != ConnState::OPERATING {
                self.set_status(ConnState::CONNECTING, "");
            }
        }
        let r = async {
            self.pop_login().await?;
            let mut s = self.open_session().await?;
            self.secure(&mut s).await?;
            let creds = self.credentials(who).await?;
            self.login(&mut s, creds).await?;
            Ok::<_, PluginError>(s)
        }
        .await;
        match &r {
            Ok(_) => self.operating(),
            Err(e) => self.unable(e),
        }
        r
    }

    /// Closes sessions on the background runtime (nobody waits for it).
    fn close_all(&self, sessions: Vec<Session>) {
        for s in sessions {
            self.bg.spawn(s.quit());
        }
    }

    /// Returns a session to the pool, or closes it in the background.
    fn release(&self, key: String, s: Session) {
        if let Some(s) = self.pool.put(key, s) {
            self.bg.spawn(s.quit());
        }
    }

    /// Delivers one message (in a task on the plugin's runtime).
    pub async fn send(&self, job: Job) -> Result<Receipt, PluginError> {
        self.send_chain(std::slice::from_ref(&job))
            .await
            .pop()
            .unwrap_or_else(|| Err(PluginError::permanent("smtp: the send gave no result")))
    }

    /// Delivers `jobs` (all for one credential key) one after the other on
    /// one connection, each message's MAIL, RCPT and DATA written with the
    /// data of the one before (RFC 2920 3.1): one round trip per message
    /// instead of two, for the client and for the server. A message the
    /// connection ended before is sent on a new connection, as after a
    /// stale pooled one.
    pub async fn send_chain(&self, jobs: &[Job]) -> Vec<Result<Receipt, PluginError>> {
        let Some(first) = jobs.first() else {
            return Vec::new();
        };
        let _permit = match self.pool.acquire().await {
            Ok(p) => p,
            Err(e) => return jobs.iter().map(|_| Err(e.clone())).collect(),
        };
        let key = first.who.key();
        let mut out = Vec::with_capacity(jobs.len());
        let mut session = None;
        let mut ok = false;
        for (i, job) in jobs.iter().enumerate() {
            let (r, s) = self.deliver(job, session.take(), jobs.get(i + 1)).await;
            ok = r.is_ok();
            out.push(r);
            match s {
                Some(s) if s.usable() => session = Some(s),
                // The next message goes on a new connection.
                Some(s) => self.release(key.clone(), s),
                None => {}
            }
        }
        match session {
            // The server just answered: QUIT here, on the connection's own
            // thread, if the pool does not keep it (no reuse, or no room).
            Some(s) if ok => {
                if let Some(s) = self.pool.put(key, s) {
                    s.quit().await;
                }
            }
            Some(s) => self.release(key, s),
            None => {}
        }
        out
    }

    /// Delivers `job` on `given` (a session whose last message's data may
    /// have carried this message's envelope), else on a pooled or new
    /// connection; with `next`, that message's envelope goes out with this
    /// one's data. Returns the session for the next message, or to go back
    /// to the pool.
    async fn deliver(
        &self,
        job: &Job,
        mut given: Option<Session>,
        next: Option<&Job>,
    ) -> (Result<Receipt, PluginError>, Option<Session>) {
        let key = job.who.key();
        let last = !self.pool.reuse();
        let tx = job.tx(last);
        // Only a message for the same credentials can follow on this connection.
        let next_tx = next
            .filter(|n| !last && n.who.key() == key)
            .map(|n| n.tx(last));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut s, reused) = match given.take() {
                Some(s) => (s, true),
                None => match self.session_for(job, &key).await {
                    Ok(found) => found,
                    Err(e) => return (Err(e), None),
                },
            };
            match s.transaction(&tx, next_tx.as_ref()).await {
                Ok(mut out) => {
                    let mut transactions = 1;
                    while !out.deferred.is_empty() {
                        s = self.continue_deferred(job, &tx, s, &mut out).await;
                        transactions += 1;
                    }
                    let receipt = self.receipt(job, &s, out, reused, transactions);
                    return (Ok(receipt), Some(s));
                }
                Err(TxFailure::Stale(e)) if reused && attempt == 1 => {
                    tracing::debug!(server = %s.addr, error = %e, "smtp: reused connection was dead; retrying on a new one");
                    self.bg.spawn(s.quit());
                    // The server probably restarted: the other idle connections are
                    // dead too, so the retry goes to a new connection.
                    for idle in self.pool.drain() {
                        drop(idle);
                    }
                    continue;
                }
                Err(f) => {
                    let e = f.into_error();
                    if !s.usable() && e.class() == ErrorClass::TRANSIENT && e.code == 0 {
                        // The connection broke: say so in the status too.
                        self.unable(&e);
                    }
                    return (Err(e), Some(s));
                }
            }
        }
    }

    /// An idle pooled session for `key` that still works (and whether it was
    /// pooled), else a new connection.
    async fn session_for(&self, job: &Job, key: &str) -> Result<(Session, bool), PluginError> {
        let (taken, expired) = self.pool.take(key, crate::rt::home());
        self.close_all(expired);
        if let Some((mut s, idle)) = taken {
            if s.adopt() && (idle < PROBE_AFTER || s.probe().await) {
                return Ok((s, true));
            }
            tracing::debug!(server = %s.addr, "smtp: idle connection could not move to this thread or failed its RSET probe; replacing it");
            self.bg.spawn(s.quit());
        }
        self.close_all(self.pool.make_room());
        Ok((self.connect(&job.who).await?, false))
    }

    /// After a `452 too many recipients`: the message went to the recipients
    /// accepted so far; send it to the deferred ones in a new transaction, on
    /// the same connection when it is still open, else on a new one. Their
    /// results are merged into `out` (the first transaction's reply stays);
    /// recipients the server defers again go to the next round, and a
    /// transaction that delivers to none ends the rounds with them refused.
    async fn continue_deferred(
        &self,
        job: &Job,
        first: &Tx<'_>,
        mut s: Session,
        out: &mut TxOutcome,
    ) -> Session {
        let to: Vec<Address> = std::mem::take(&mut out.deferred)
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        tracing::debug!(server = %s.addr, deferred = to.len(), accepted = out.accepted.len(), "smtp: the server limits recipients per transaction (452); sending to the rest in a new transaction");
        if !s.usable() {
            match self.connect(&job.who).await {
                Ok(fresh) => {
                    self.bg.spawn(s.quit());
                    s = fresh;
                }
                Err(e) => {
                    refuse_all(out, &to, &e);
                    return s;
                }
            }
        }
        let tx = Tx { to: &to, ..*first };
        match s.transaction(&tx, None).await {
            Ok(next) => {
                out.accepted.extend(next.accepted);
                out.rejected.extend(next.rejected);
                out.deferred = next.deferred;
            }
            // Every recipient refused: each keeps its own reply.
            Err(TxFailure::AllRefused(_, each)) => out.rejected.extend(each),
            Err(f) => refuse_all(out, &to, &f.into_error()),
        }
        s
    }

    fn receipt(
        &self,
        job: &Job,
        s: &Session,
        out: TxOutcome,
        reused: bool,
        transactions: usize,
    ) -> Receipt {
        let reply_text = out.reply.to_string();
        let server_id = queue_id(&out.reply.text());
        let details = ReceiptDetails {
            server: &s.addr,
            tls: s.is_tls(),
            auth: s.authenticated,
            pipelining: out.pipelined,
            pipelined_with_previous: out.ahead,
            reused_connection: reused,
            transactions,
            smtputf8: job.needs_smtputf8,
            dsn: out.dsn_sent.map(|sent| {
                if sent {
                    "requested"
                } else {
                    "not offered by the server; sent without DSN"
                }
            }),
        };
        Receipt {
            message_id: job.message_id.as_str().into(),
            server_id: server_id.as_str().into(),
            server_reply: reply_text.as_str().into(),
            accepted: out.accepted.iter().map(|a| a.as_str().into()).collect(),
            rejected: out
                .rejected
                .into_iter()
                .map(|(a, e)| RejectedRecipient {
                    address: a.as_str().into(),
                    error: e,
                })
                .collect(),
            details_json: serde_json::to_string(&details)
                .unwrap_or_default()
                .as_str()
                .into(),
        }
    }

    /// Closes idle connections past `idle_timeout`.
    pub async fn reap(&self) {
        let expired = self.pool.expired();
        if !expired.is_empty() {
            for s in expired {
                s.quit().await;
            }
            if self.pool.idle_count() == 0 && self.pool.in_use() == 0 {
                let st = self.status.lock().unwrap_or_else(|p| p.into_inner()).state;
                if st == ConnState::OPERATING {
                    self.set_status(ConnState::NOT_CONNECTED, "");
                }
            }
        }
    }
}

/// Each of `to` refused with `e` (a later transaction that failed as a whole).
fn refuse_all(out: &mut TxOutcome, to: &[Address], e: &PluginError) {
    out.rejected.extend(to.iter().map(|a| {
        let mut e = e.clone();
        e.message = format!("recipient <{a}>: {}", e.message()).into();
        (a.to_string(), e)
    }));
}

/// The queue id in a final reply (`Ok: queued as 4F2A`, `id=...`), or empty.
fn queue_id(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    for marker in ["queued as ", "id=", "queued "] {
        if let Some(p) = lower.find(marker) {
            return text[p + marker.len()..]
                .split(|c: char| c.is_whitespace() || c == ')' || c == ']')
                .next()
                .unwrap_or("")
                .trim_end_matches(['.', ','])
                .to_string();
        }
    }
    String::new()
}

/// What a receipt's `details_json` says about the send (serialized as is:
/// no map of values built for each message).
#[derive(serde::Serialize)]
struct ReceiptDetails<'a> {
    server: &'a str,
    tls: bool,
    auth: Option<&'static str>,
    pipelining: bool,
    /// MAIL, RCPT and DATA went out with the previous message's data.
    pipelined_with_previous: bool,
    reused_connection: bool,
    transactions: usize,
    smtputf8: bool,
    dsn: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids() {
        assert_eq!(queue_id("2.0.0 Ok: queued as 000012"), "000012");
        assert_eq!(queue_id("Ok"), "");
    }
}
