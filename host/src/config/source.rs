//! Where a config value came from, and errors that say so.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A config file's text and name, to turn byte spans into `file:line:col`.
#[derive(Debug, Clone)]
pub struct Source {
    /// Shown in messages: the path, or `<embedded default>`.
    pub name: String,
    /// Directory relative paths in the file are taken against.
    pub base_dir: PathBuf,
    pub text: String,
}

impl Source {
    /// Reads a config file: at most [`crate::limits::MAX_CONFIG_BYTES`]
    /// (a `/dev/zero` fails fast), UTF-8 (a bad byte is reported where it is).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let at = |line: usize, col: usize| Loc {
            file: path.display().to_string(),
            line,
            col,
        };
        let bytes = crate::limits::read_bounded(
            path,
            crate::limits::MAX_CONFIG_BYTES,
            "the config file's size limit",
        )
        .map_err(|e| match e {
            crate::limits::ReadError::TooLarge { limit, .. } => ConfigError {
                loc: at(0, 0),
                message: format!("the config file is larger than {limit} bytes"),
                hint: "is --config or MAILHOST_CONFIG pointing at the right file? A config is a few KB of TOML".to_string(),
            },
            crate::limits::ReadError::Io { source, .. } => ConfigError {
                loc: at(0, 0),
                message: format!("cannot read the config file: {source}"),
                hint: "check the path given with --config or MAILHOST_CONFIG".to_string(),
            },
        })?;
        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Self::from_bytes(&path.display().to_string(), &base_dir, bytes)
    }

    /// A config text from bytes: UTF-8, or an error at the first bad byte.
    pub fn from_bytes(name: &str, base_dir: &Path, bytes: Vec<u8>) -> Result<Self, ConfigError> {
        let text = String::from_utf8(bytes).map_err(|e| {
            let (line, col, offset) = super::checks::utf8_error_at(e.as_bytes(), &e.utf8_error());
            let byte = e.as_bytes().get(offset).copied().unwrap_or(0);
            ConfigError {
                loc: Loc {
                    file: name.to_string(),
                    line,
                    col,
                },
                message: format!(
                    "the config file is not UTF-8: byte {offset} (0x{byte:02x}) starts no valid character"
                ),
                hint: "save the file as UTF-8 (TOML files are UTF-8)".to_string(),
            }
        })?;
        Ok(Self {
            name: name.to_string(),
            base_dir: base_dir.to_path_buf(),
            text,
        })
    }

    pub fn from_text(name: &str, base_dir: &Path, text: &str) -> Self {
        Self {
            name: name.to_string(),
            base_dir: base_dir.to_path_buf(),
            text: text.to_string(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    pub fn loc(&self, span: &Range<usize>) -> Loc {
        let (line, col) = self.line_col(span.start);
        Loc {
            file: self.name.clone(),
            line,
            col,
        }
    }

    pub fn error(
        &self,
        span: &Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            loc: self.loc(span),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// `file:line:col` of a config value.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Loc {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}

/// One mistake in the config: where, what, and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigError {
    pub loc: Loc,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every mistake found in one pass (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}
