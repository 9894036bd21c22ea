//! Values that go on the wire must be one line.
//!
//! A plugin writes settings, per-user credentials, request options and envelope
//! addresses into protocol lines: SMTP commands (`EHLO name`, `MAIL FROM:<a>`),
//! POP3 commands, HTTP request paths, pickup-file headers. A carriage return or
//! line feed in such a value ends the line early and turns the rest into a
//! command of its own (`helo_name = "x.example\r\nRSET"`); a NUL truncates
//! C-string handling on the far side. Every plugin refuses them, whatever the
//! value's source, even when the host's schema already refused them (defence in
//! depth). These are plain Rust helpers, not ABI types.
//!
//! ```
//! use mailhost_plugin_api::{wire, ErrorClass};
//! assert!(wire::check("mx.example.com").is_ok());
//! let e = wire::setting("smtp", "helo_name", "x.example\r\nX-INJECTED").unwrap_err();
//! assert_eq!(e.class(), ErrorClass::CONFIG);
//! assert!(e.message().contains("`helo_name`"));
//! assert!(e.message().contains(r"x.example\r\nX-INJECTED")); // escaped, never raw
//! assert!(!e.message().contains('\n'));
//! ```

use crate::PluginError;

/// The first forbidden character of a value: where and which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forbidden {
    /// Byte offset in the value.
    pub at: usize,
    /// `'\r'`, `'\n'` or `'\0'`.
    pub ch: char,
}

impl Forbidden {
    /// "a line feed (LF) at byte 9".
    pub fn describe(&self) -> String {
        let what = match self.ch {
            '\r' => "a carriage return (CR)",
            '\n' => "a line feed (LF)",
            _ => "a NUL character",
        };
        format!("{what} at byte {}", self.at)
    }
}

/// `Err` with the first CR, LF or NUL in `value`.
pub fn check(value: &str) -> Result<(), Forbidden> {
    match value
        .bytes()
        .position(|b| matches!(b, b'\r' | b'\n' | b'\0'))
    {
        None => Ok(()),
        Some(at) => Err(Forbidden {
            at,
            ch: char::from(value.as_bytes()[at]),
        }),
    }
}

/// Most characters of a value shown in an error.
const SHOWN: usize = 80;

/// `value` for an error message: control characters escaped (`\r`, `\n`,
/// `\0`, `\u{1b}`), quoted, and cut after 80 characters.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(SHOWN) + 8);
    out.push('"');
    for (i, c) in value.chars().enumerate() {
        if i == SHOWN {
            out.push_str("\"… (");
            out.push_str(&value.chars().count().to_string());
            out.push_str(" characters)");
            return out;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

const ONE_LINE: &str =
    "a value that goes into a protocol line or a header must be one line without CR, LF or NUL";

/// Checks an account setting at `open`: a CONFIG error naming `plugin` and
/// `key`, with the value escaped.
pub fn setting(plugin: &str, key: &str, value: &str) -> Result<(), PluginError> {
    check(value).map_err(|f| {
        PluginError::config(format!(
            "{plugin} setting `{key}`: {} contains {}; {ONE_LINE}",
            escape(value),
            f.describe()
        ))
    })
}

/// Checks a secret (a resolved password) for `what` (e.g. "setting
/// `pop_before_smtp.password`"): never shows the value.
pub fn secret(plugin: &str, what: &str, value: &str) -> Result<(), PluginError> {
    check(value).map_err(|f| {
        PluginError::config(format!(
            "{plugin}: the secret for {what} contains {}; a secret sent to the server must be \
             one line without CR, LF or NUL (a secret file ends at its first line ending)",
            f.describe()
        ))
    })
}

/// Checks a value of the request at `send` (an envelope address, a request
/// option, per-user credentials): a PERMANENT error naming `field`.
pub fn request(plugin: &str, field: &str, value: &str) -> Result<(), PluginError> {
    check(value).map_err(|f| {
        PluginError::permanent(format!(
            "{plugin}: the request's {field} {} contains {}; {ONE_LINE}",
            escape(value),
            f.describe()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn finds_each_forbidden_character() {
        assert_eq!(check("a\rb"), Err(Forbidden { at: 1, ch: '\r' }));
        assert_eq!(check("ab\n"), Err(Forbidden { at: 2, ch: '\n' }));
        assert_eq!(check("\0"), Err(Forbidden { at: 0, ch: '\0' }));
        assert_eq!(check("tab\tand ünïcode"), Ok(()));
    }

    #[test]
    fn escapes_and_cuts() {
        assert_eq!(escape("a\r\n\0\u{1b}"), r#""a\r\n\0\u{1b}""#);
        let long = "x".repeat(200);
        let e = escape(&long);
        assert!(e.ends_with("(200 characters)"), "{e}");
        assert!(e.len() < 120);
    }

    #[test]
    fn classes_and_no_raw_value() {
        let e = request("graph", "recipient", "a@b.example\nBCC").unwrap_err();
        assert_eq!(e.class(), ErrorClass::PERMANENT);
        assert!(e.message().contains("recipient"));
        assert!(!e.message().contains('\n'));
        let e = secret("smtp", "setting `password`", "hunter2\r\n").unwrap_err();
        assert_eq!(e.class(), ErrorClass::CONFIG);
        assert!(!e.message().contains("hunter2"));
    }
}
