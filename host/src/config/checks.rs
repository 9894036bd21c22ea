//! Checks that hold for every value, whatever plugin or section it is for:
//! what may go on a wire (no CR, LF or NUL, a sane length), which keys hold
//! secrets (never echoed in an error), and where a non-UTF-8 byte is.

/// The longest string value the config accepts (a host name is at most 253
/// bytes, a URL or path a few hundred). Larger values are mistakes or attacks.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Key names whose values are secrets (or references to them). Errors about
/// such a key never show its value. Matched as a part of the key
/// (`smtp_password`, `client_secret`, `api_token`).
const SECRET_NAME_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "passphrase",
    "private_key",
    "credential",
];

/// Whether values of `key` are secrets: by name, or because the schema
/// property says so (`"writeOnly": true` or `"format": "secret"`).
pub fn is_secret_key(key: &str, schema: Option<&serde_json::Value>) -> bool {
    let lower = key.to_ascii_lowercase();
    if SECRET_NAME_PARTS.iter().any(|p| lower.contains(p)) {
        return true;
    }
    schema
        .and_then(|s| s.get("properties"))
        .and_then(|p| p.get(key))
        .is_some_and(|p| {
            p.get("writeOnly") == Some(&serde_json::Value::Bool(true))
                || p.get("format").and_then(|f| f.as_str()) == Some("secret")
        })
}

/// What is wrong with a string that may go on a wire, if anything. Never
/// includes the value (it may be a secret).
pub fn string_problem(s: &str) -> Option<String> {
    if let Some(c) = s.chars().find(|c| matches!(c, '\r' | '\n' | '\0')) {
        let name = match c {
            '\r' => "a carriage return (CR)",
            '\n' => "a line feed (LF)",
            _ => "a NUL byte",
        };
        return Some(format!(
            "contains {name}, which would end a protocol line early (an injected command)"
        ));
    }
    if s.len() > MAX_VALUE_BYTES {
        return Some(format!(
            "is {} bytes long; values are limited to {MAX_VALUE_BYTES} bytes",
            s.len()
        ));
    }
    None
}

/// Every string in `v` (nested tables and arrays included) with a problem,
/// as (`key.sub[2]` path, problem).
pub fn wire_problems(v: &toml::Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::String(s) => {
            if let Some(p) = string_problem(s) {
                out.push((path.to_string(), p));
            }
        }
        toml::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                wire_problems(x, &format!("{path}[{i}]"), out);
            }
        }
        toml::Value::Table(t) => {
            for (k, x) in t {
                if let Some(p) = string_problem(k) {
                    out.push((format!("{path}.<key>"), p));
                }
                wire_problems(x, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// The JSON type name of a value, for "expected a string, found an integer".
fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_f64() => "a float",
        serde_json::Value::Number(_) => "an integer",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "a table",
    }
}

/// A schema error about a secret, told without its value: the rule broken
/// (the schema keyword and what it asks for) and the type that was given.
pub fn secret_schema_error(
    e: &jsonschema::ValidationError<'_>,
    property: Option<&serde_json::Value>,
) -> String {
    let keyword = e
        .schema_path
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    let what = match &e.kind {
        jsonschema::error::ValidationErrorKind::Type { .. } => {
            match property.and_then(|p| p.get("type")) {
                Some(serde_json::Value::String(t)) => format!("must be of type {t}"),
                Some(t) => format!("must be of type {t}"),
                None => "has the wrong type".to_string(),
            }
        }
        _ => format!("breaks the schema's `{keyword}` rule"),
    };
    format!(
        "{what}, but {} was given (the value is not shown: it is a secret)",
        json_type(&e.instance)
    )
}

/// A serde/TOML error about key `key`, with any quoted value taken out when
/// the key holds a secret (`invalid type: integer `918...`, expected a string`).
pub fn scrub_toml_message(msg: &str, key: Option<&str>) -> String {
    let Some(key) = key.filter(|k| is_secret_key(k, None)) else {
        return msg.to_string();
    };
    let expected = msg
        .split_once("expected")
        .map(|(_, e)| format!(": expected {}", e.trim()))
        .unwrap_or_default();
    let what = if msg.starts_with("invalid type") {
        "has the wrong type"
    } else {
        "has an invalid value"
    };
    format!("`{key}` {what}{expected} (the value is not shown: it is a secret)")
}

/// The key whose value the byte `offset` of `text` is in (where a TOML value
/// error points): the last `key =` before it on its line, so that in
/// `b = { password = 1 }` it is `password`.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let before = text.get(..offset)?;
    let line = &before[before.rfind('\n').map(|i| i + 1).unwrap_or(0)..];
    let (head, _) = line.rsplit_once('=')?;
    let key = head
        .trim_end()
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '{' | ',' | '.'))
        .next()?
        .trim_matches(['"', '\'']);
    (!key.is_empty()).then(|| key.to_string())
}

/// Line and column (1-based, column in bytes) of the first byte that is not
/// valid UTF-8, and that byte's offset.
pub fn utf8_error_at(bytes: &[u8], e: &std::str::Utf8Error) -> (usize, usize, usize) {
    let offset = e.valid_up_to();
    let before = &bytes[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    // Columns count characters, like the other errors' (the prefix is valid UTF-8).
    let col = std::str::from_utf8(&bytes[line_start..offset])
        .map(|s| s.chars().count())
        .unwrap_or(offset - line_start)
        + 1;
    (line, col, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_problems_name_the_path_never_the_value() {
        let v: toml::Value = toml::from_str(
            "a = \"ok\"\nb = \"x\\r\\nQUIT\"\nc = [\"fine\", \"y\\u0000\"]\n[d]\ne = \"z\\n\"",
        )
        .unwrap();
        let mut out = Vec::new();
        if let toml::Value::Table(t) = &v {
            for (k, x) in t {
                wire_problems(x, k, &mut out);
            }
        }
        let paths: Vec<&str> = out.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["b", "c[1]", "d.e"]);
        assert!(out[0].1.contains("carriage return") && !out[0].1.contains("QUIT"));
        assert!(out[1].1.contains("NUL"));
        assert!(string_problem(&"h".repeat(MAX_VALUE_BYTES)).is_none());
        assert!(string_problem(&"h".repeat(MAX_VALUE_BYTES + 1))
            .unwrap()
            .contains("4097 bytes long"));
    }

    #[test]
    fn secret_keys_by_name_and_by_schema() {
        assert!(is_secret_key("password", None));
        assert!(is_secret_key("client_secret", None));
        assert!(is_secret_key("API_TOKEN", None));
        assert!(!is_secret_key("username", None));
        let schema = serde_json::json!({"properties": {
            "pin": {"type": "string", "writeOnly": true},
            "key": {"type": "string", "format": "secret"},
            "host": {"type": "string"}}});
        assert!(is_secret_key("pin", Some(&schema)));
        assert!(is_secret_key("key", Some(&schema)));
        assert!(!is_secret_key("host", Some(&schema)));
    }

    #[test]
    fn toml_messages_about_secrets_lose_the_value() {
        let m = "invalid type: integer `918273645546372`, expected a string";
        let s = scrub_toml_message(m, Some("client_secret"));
        assert!(!s.contains("918273645546372"), "{s}");
        assert!(
            s.contains("wrong type") && s.contains("expected a string"),
            "{s}"
        );
        assert_eq!(scrub_toml_message(m, Some("tenant")), m);
        let text = "[oauth.m]\nclient_secret = 918273645546372\n";
        assert_eq!(
            key_at(text, text.find("918").unwrap()).as_deref(),
            Some("client_secret")
        );
        let text = "[users.a.accounts]\nb = { username = \"u\", password = 918 }\n";
        assert_eq!(
            key_at(text, text.find("918").unwrap()).as_deref(),
            Some("password")
        );
    }

    #[test]
    fn the_bad_utf8_byte_is_located() {
        let bytes = b"a = 1\nb = \"x\xff\"\n".to_vec();
        let e = std::str::from_utf8(&bytes).unwrap_err();
        assert_eq!(utf8_error_at(&bytes, &e), (2, 7, 12));
    }
}
