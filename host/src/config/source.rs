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
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            loc: Loc {
                file: path.display().to_string(),
                line: 0,
                col: 0,
            },
            message: format!("cannot read the config file: {e}"),
            hint: "check the path given with --config or MAILHOST_CONFIG".to_string(),
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
        Ok(Self {
            name: path.display().to_string(),
            base_dir,
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
