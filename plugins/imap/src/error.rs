//! Classified errors: what failed, where, the server's words, what to do.
//! Never a secret: commands that carry credentials are not quoted.

use std::io;
use std::time::Duration;

use mailhost_plugin_api::PluginError;

use crate::client::{Reply, Status};

pub fn timeout(addr: &str, stage: &str, limit: Duration) -> PluginError {
    PluginError::transient(format!(
        "imap: {addr} did not answer within {} ms during {stage}; the server is slow or unreachable (raise `timeout_ms` if it is just slow)",
        limit.as_millis()
    ))
}

pub fn connect(addr: &str, e: &io::Error) -> PluginError {
    PluginError::transient(format!(
        "imap: cannot connect to {addr}: {e}; check `host` and `port` and that the server is running"
    ))
}

pub fn io(addr: &str, stage: &str, e: &io::Error) -> PluginError {
    PluginError::transient(format!(
        "imap: the connection to {addr} failed during {stage}: {e}"
    ))
}

pub fn closed(addr: &str, stage: &str) -> PluginError {
    PluginError::transient(format!("imap: {addr} closed the connection during {stage}"))
}

/// A TLS failure: an untrusted certificate is a settings matter, the rest transient.
pub fn tls(addr: &str, e: &io::Error) -> PluginError {
    let text = e.to_string();
    if mailhost_tls::is_certificate_error(e) || text.contains("invalid peer certificate") {
        PluginError::config(format!(
            "imap: TLS handshake with {addr} failed: the server's certificate is not trusted ({text}); \
             if the server uses a private CA, set `ca_file` to its PEM file"
        ))
    } else if text.contains("ProtocolVersion") || text.contains("protocol version") {
        PluginError::config(format!(
            "imap: TLS handshake with {addr} failed: no common TLS version ({text}); TLS 1.0/1.1 are refused (RFC 8996)"
        ))
    } else {
        PluginError::transient(format!("imap: TLS handshake with {addr} failed: {text}"))
    }
}

/// A tagged NO/BAD for a command other than login or APPEND.
pub fn refused(addr: &str, command: &str, r: &Reply) -> PluginError {
    let class = if r.status == Status::Bad {
        PluginError::permanent
    } else {
        transient_or_permanent(r)
    };
    class(format!("imap: {addr} refused {command}: {}", r.line()))
}

fn transient_or_permanent(r: &Reply) -> fn(String) -> PluginError {
    let code = r
        .code()
        .map(|c| c.split(' ').next().unwrap_or("").to_ascii_uppercase())
        .unwrap_or_default();
    match code.as_str() {
        "UNAVAILABLE" | "INUSE" | "SERVERBUG" | "EXPUNGEISSUED" | "LIMIT" => PluginError::transient,
        _ => PluginError::permanent,
    }
}

/// A refused login: the credentials, unless the server says otherwise.
pub fn login(addr: &str, mechanism: &str, user: &str, r: &Reply) -> PluginError {
    let code = r.code().unwrap_or("").to_ascii_uppercase();
    let line = r.line();
    if code.starts_with("UNAVAILABLE") {
        return PluginError::transient(format!(
            "imap: {addr} cannot log in {user} ({mechanism}) just now: {line}"
        ));
    }
    if r.status == Status::Bad {
        return PluginError::permanent(format!(
            "imap: {addr} did not understand the {mechanism} login: {line}; try another `mechanism`"
        ));
    }
    PluginError::auth(format!(
        "imap: {addr} refused the login of {user} with {mechanism}: {line}; check `username` and the password or token"
    ))
}

/// A refused APPEND, classified by its response code.
pub fn append(addr: &str, folder: &str, r: &Reply) -> PluginError {
    let code = r
        .code()
        .map(|c| c.split(' ').next().unwrap_or("").to_ascii_uppercase())
        .unwrap_or_default();
    let line = r.line();
    match code.as_str() {
        "TRYCREATE" | "NONEXISTENT" => PluginError::config(format!(
            "imap: folder {folder:?} does not exist on {addr}: {line}; set the folder setting to an existing folder or `create_folders = true`"
        )),
        "OVERQUOTA" => PluginError::permanent(format!(
            "imap: the mailbox on {addr} is over its quota, the message was not stored in {folder:?}: {line}; free space in the mailbox"
        )),
        "TOOBIG" => PluginError::permanent(format!(
            "imap: {addr} refused the message for {folder:?} as too big: {line}"
        )),
        "NOPERM" => PluginError::config(format!(
            "imap: no permission to store into {folder:?} on {addr}: {line}; choose another folder"
        )),
        _ if r.status == Status::Bad => PluginError::permanent(format!(
            "imap: {addr} refused to store the message in {folder:?}: {line}"
        )),
        _ => transient_or_permanent(r)(format!(
            "imap: {addr} refused to store the message in {folder:?}: {line}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhost_plugin_api::ErrorClass;

    fn no(text: &str) -> Reply {
        Reply {
            untagged: vec![],
            status: Status::No,
            text: text.into(),
        }
    }

    #[test]
    fn append_codes() {
        let e = append(
            "h:1",
            "Drafts",
            &no("[TRYCREATE] Mailbox doesn't exist: Drafts"),
        );
        assert_eq!(e.class(), ErrorClass::CONFIG);
        assert!(e.message().contains("\"Drafts\""));
        let e = append("h:1", "Sent", &no("[OVERQUOTA] Quota exceeded"));
        assert_eq!(e.class(), ErrorClass::PERMANENT);
        let e = append("h:1", "Sent", &no("[UNAVAILABLE] try later"));
        assert_eq!(e.class(), ErrorClass::TRANSIENT);
    }

    #[test]
    fn login_codes() {
        let e = login(
            "h:1",
            "PLAIN",
            "u",
            &no("[AUTHENTICATIONFAILED] Authentication failed."),
        );
        assert_eq!(e.class(), ErrorClass::AUTH);
        let e = login("h:1", "PLAIN", "u", &no("[UNAVAILABLE] backend down"));
        assert_eq!(e.class(), ErrorClass::TRANSIENT);
    }
}
