//! Secret references: `env:NAME`, `file:PATH`, or a literal (warned about by config validation).

use std::path::Path;

use mailhost_plugin_api::PluginError;

/// What kind of secret reference a configured value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Env,
    File,
    Literal,
}

pub fn kind(reference: &str) -> SecretKind {
    if reference.starts_with("env:") {
        SecretKind::Env
    } else if reference.starts_with("file:") {
        SecretKind::File
    } else {
        SecretKind::Literal
    }
}

/// Resolves a secret reference. Errors name the reference, never a value.
/// A `file:` path that is relative is taken relative to `base` (the config file's directory).
pub fn resolve(reference: &str, base: Option<&Path>) -> Result<String, PluginError> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| {
            PluginError::config(format!(
                "secret `{reference}`: environment variable {name} is not set (or not UTF-8); set it in the host's environment"
            ))
        });
    }
    if let Some(path) = reference.strip_prefix("file:") {
        let p = Path::new(path);
        let p = match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        };
        // Bounded: a `/dev/zero` or a huge file fails fast instead of filling memory.
        let bytes = crate::limits::read_bounded(
            &p,
            crate::limits::MAX_SECRET_BYTES,
            "the secret size limit",
        )
        .map_err(|e| match e {
            crate::limits::ReadError::TooLarge { limit, .. } => PluginError::config(format!(
                "secret `{reference}`: {} is larger than {limit} bytes, too large for a secret; point `file:` at the file holding only the secret",
                p.display()
            )),
            crate::limits::ReadError::Io { source, .. } => PluginError::config(format!(
                "secret `{reference}`: cannot read {}: {source}; check the path and the host's permission to read it",
                p.display()
            )),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            PluginError::config(format!(
                "secret `{reference}`: {} is not UTF-8 text; store the secret as text",
                p.display()
            ))
        })?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_string());
    }
    Ok(reference.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_and_literal() {
        // A variable every test process has (set_var would race other tests' threads).
        let (name, value) = std::env::vars()
            .find(|(k, v)| !k.is_empty() && !v.is_empty())
            .expect("some environment variable");
        assert_eq!(resolve(&format!("env:{name}"), None).unwrap(), value);
        let e = resolve("env:MAILHOST_TEST_SECRET_MISSING", None).unwrap_err();
        assert!(e.message().contains("MAILHOST_TEST_SECRET_MISSING"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "filesecret\n").unwrap();
        assert_eq!(resolve("file:pw", Some(dir.path())).unwrap(), "filesecret");
        assert_eq!(resolve("plain", None).unwrap(), "plain");
        assert_eq!(kind("plain"), SecretKind::Literal);
    }

    #[test]
    fn a_device_or_huge_file_as_secret_fails_fast() {
        let e = resolve("file:/dev/zero", None).unwrap_err();
        assert!(
            e.message().contains("/dev/zero is larger than 65536 bytes"),
            "{}",
            e.message()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bin"), [0xff, 0xfe, 0x00]).unwrap();
        let e = resolve("file:bin", Some(dir.path())).unwrap_err();
        assert!(e.message().contains("is not UTF-8"), "{}", e.message());
    }
}
