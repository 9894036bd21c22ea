//! Saving from the admin page: the config file is edited with `toml_edit`
//! (comments and layout kept), validated by the same validator as `config
//! validate`, written atomically, and a new engine built from it replaces
//! the running one. Passwords typed on the page go to files of mode 0600
//! under `secrets/` beside the config, referenced with `file:`.
//!
//! Concurrent edits: each form carries the ETag (a hash of the file's text)
//! it was rendered from; a save whose ETag no longer matches the file is
//! refused, never merged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use toml_edit::DocumentMut;

use super::AdminState;
use crate::config::{self, Settings, Source};
use crate::engine::Engine;

/// The config file as the page edits it.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub path: PathBuf,
    pub base_dir: PathBuf,
    pub text: String,
    pub etag: String,
}

/// The ETag of a config text.
pub(crate) fn etag(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    crate::digest::hex(&d[..12])
}

/// Why saving is not possible at all (not a validation error).
pub(crate) fn read_only_reason(settings: &Settings, shared_outbox: bool) -> Option<String> {
    if settings.source == config::EMBEDDED_NAME {
        return Some("the service runs on the embedded default config; start it with --config FILE to edit settings here".into());
    }
    if shared_outbox {
        return Some("the outbox is on PostgreSQL, shared by several `serve` hosts: each host reads its own config file, so a change made here would reach only this host. Edit the config files (the same on every host) and restart the hosts one at a time".into());
    }
    None
}

/// Reads the config file the running engine was built from.
pub(crate) fn load(settings: &Settings, shared_outbox: bool) -> Result<Loaded, String> {
    if let Some(why) = read_only_reason(settings, shared_outbox) {
        return Err(why);
    }
    let path = PathBuf::from(&settings.source);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    Ok(Loaded {
        etag: etag(&text),
        base_dir: settings.base_dir.clone(),
        path,
        text,
    })
}

pub(crate) fn parse(l: &Loaded) -> Result<DocumentMut, String> {
    l.text.parse::<DocumentMut>().map_err(|e| {
        format!(
            "{}: the config file does not parse as TOML: {e}",
            l.path.display()
        )
    })
}

/// Validates a candidate config text with the CLI's validator; errors as
/// `file:line:col: message` lines (hints included).
pub(crate) fn validate(
    l: &Loaded,
    text: &str,
    plugins: &crate::loader::PluginSet,
) -> Result<Settings, Vec<String>> {
    let src = Source::from_text(&l.path.display().to_string(), &l.base_dir, text);
    config::validate(&src, plugins).map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

/// Before [`validate`] in the service: when the candidate holds a plugin
/// schema or account settings this host has not seen valid yet
/// ([`crate::checked`]), has them checked in a short-lived child process,
/// as `serve` does at start (cli/serve_check.rs), so that the validation
/// here finds them known and compiles no JSON Schema. The schema library's
/// static data would otherwise stay in the service for good (about 10 MB).
/// The child only remembers; [`validate`] here is always the answer, and a
/// candidate the child found invalid is checked (and reported) here.
///
/// `text` goes to a file of mode 0600 beside the config for the child to
/// read (relative paths resolve the same), removed after. Only a text that
/// could be saved as it is comes here: no typed secret values.
pub(crate) async fn check_in_child(l: &Loaded, text: &str, plugins: &crate::loader::PluginSet) {
    if !crate::checked::enabled() {
        return;
    }
    let src = Source::from_text(&l.path.display().to_string(), &l.base_dir, text);
    let (_, needed) = crate::loader::without_compiling(|| config::validate(&src, plugins));
    if !needed {
        return;
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = l.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = l
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "mailhost.toml".into());
    let tmp = dir.join(format!(".{name}.check-{}-{n}", std::process::id()));
    if let Err(e) = write_private(&tmp, text) {
        tracing::debug!("admin: {e}; checking the config here");
        return;
    }
    let dirs = plugins.searched.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let ran = crate::cli::serve_check::check_file_in_child(&tmp, &dirs);
        let _ = std::fs::remove_file(&tmp);
        ran
    })
    .await;
    if !matches!(checked, Ok(true)) {
        tracing::debug!("admin: no check child for this config; checking it here");
    }
}

/// Writes `text` to a new file of mode 0600 (no other user reads a config).
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut o = private_file();
    o.create_new(true);
    o.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Options that create a file for writing with mode 0600 (Unix): for
/// secrets and for config text, which no other user reads.
fn private_file() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o
}

/// A secret typed on the page, to be written to `secrets/NAME` beside the config.
#[derive(Clone)]
pub(crate) struct NewSecret {
    /// The file name under `secrets/`.
    pub file: String,
    pub value: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewSecret({})", self.file)
    }
}

/// The `file:` reference (relative to the config's directory) for a secret file.
pub(crate) fn secret_ref(file: &str) -> String {
    format!("file:secrets/{file}")
}

/// A file name for the secret of `key` in `section` (letters, digits, `-`, `_`, `.`).
pub(crate) fn secret_file_name(section: &str, key: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}.{}", clean(section), clean(key))
}

/// Why a save did not happen.
#[derive(Debug)]
pub(crate) enum SaveError {
    /// Someone saved since the form was rendered.
    Conflict,
    /// The candidate config does not validate (file:line messages).
    Invalid(Vec<String>),
    /// Reading or writing failed.
    Io(String),
}

impl SaveError {
    pub fn html(&self) -> String {
        use super::esc;
        match self {
            SaveError::Conflict => "<strong>Not saved:</strong> the config changed since this page was loaded (another admin saved, or the file was edited). Reload the page to see the current settings and make your change again.".into(),
            SaveError::Invalid(errs) => format!(
                "<strong>Not saved: the change does not validate</strong> (the same check as <code>mailhost config validate</code>):<pre>{}</pre>",
                esc(&errs.join("\n"))
            ),
            SaveError::Io(e) => format!("<strong>Not saved:</strong> {}", esc(e)),
        }
    }
}

fn write_secret(dir: &Path, s: &NewSecret) -> Result<(), String> {
    use std::io::Write as _;
    let secrets = dir.join("secrets");
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(&secrets)
        .map_err(|e| format!("cannot create {}: {e}", secrets.display()))?;
    let path = secrets.join(&s.file);
    let tmp = secrets.join(format!(".{}.tmp", s.file));
    let mut o = private_file();
    o.create(true).truncate(true);
    let mut f = o
        .open(&tmp)
        .map_err(|e| format!("cannot write the secret file {}: {e}", tmp.display()))?;
    f.write_all(s.value.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write the secret file {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| format!("cannot put the secret file at {}: {e}", path.display()))
}

/// Replaces the config file with `text` atomically: a new file beside it
/// (mode 0600 until it takes the old one's permissions), synced, renamed
/// over it, the folder synced. A symbolic link is written through (the file
/// it points to is replaced), so a config linked from elsewhere stays linked.
pub(crate) fn write_config(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "mailhost.toml".into());
    let tmp = dir.join(format!(".{name}.mailhost-tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut o = private_file();
    o.create_new(true);
    let mut f = o
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|_| match std::fs::metadata(&target) {
            Ok(m) => std::fs::set_permissions(&tmp, m.permissions()),
            Err(_) => Ok(()),
        })
        .and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", tmp.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot replace {}: {e}", target.display()));
    }
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Saves an edit made on `before` (the file as the form saw it, by ETag):
/// refuses a stale ETag, validates, writes secrets then the config, and
/// swaps in a new engine. Returns the warnings of the new config.
pub(crate) async fn save(
    st: &AdminState,
    form_etag: &str,
    edit: impl FnOnce(&mut DocumentMut) -> Result<Vec<NewSecret>, String>,
) -> Result<Vec<String>, SaveError> {
    let _one_at_a_time = st.save_lock.lock().await;
    let engine = st.engine();
    let l = load(engine.settings(), st.shared_outbox()).map_err(SaveError::Io)?;
    if l.etag != form_etag {
        return Err(SaveError::Conflict);
    }
    let mut doc = parse(&l).map_err(SaveError::Io)?;
    let secrets = edit(&mut doc).map_err(|e| SaveError::Invalid(vec![e]))?;
    let text = doc.to_string();
    check_in_child(&l, &text, engine.plugins()).await;
    // Validate with the secrets' references in place (a missing file is a warning only).
    let settings = validate(&l, &text, engine.plugins()).map_err(SaveError::Invalid)?;
    for s in &secrets {
        write_secret(&l.base_dir, s).map_err(SaveError::Io)?;
    }
    write_config(&l.path, &text).map_err(SaveError::Io)?;
    let warnings = settings.warnings.iter().map(|w| w.to_string()).collect();
    let fresh = Arc::new(Engine::new(settings, engine.plugins().clone()));
    let old = st.app.engine.set(fresh);
    // Open connections of the old engine close once no request holds it.
    drop(old);
    tracing::info!(
        "admin: config {} saved and applied (no restart)",
        l.path.display()
    );
    Ok(warnings)
}

/// The table at `[a.b]`, created (as a standard table) when missing.
pub(crate) fn table<'a>(
    doc: &'a mut DocumentMut,
    path: &[&str],
) -> Result<&'a mut toml_edit::Table, String> {
    let mut t = doc.as_table_mut();
    for (i, k) in path.iter().enumerate() {
        if !t.contains_key(k) {
            let mut nt = toml_edit::Table::new();
            nt.set_implicit(i + 1 < path.len());
            t.insert(k, toml_edit::Item::Table(nt));
        }
        t = t.get_mut(k).and_then(|i| i.as_table_mut()).ok_or_else(|| {
            format!(
                "[{}] is not a table in the config file",
                path[..=i].join(".")
            )
        })?;
    }
    Ok(t)
}

/// Sets `key` in `t` keeping the key's comments and position when it exists.
pub(crate) fn set(t: &mut toml_edit::Table, key: &str, v: toml_edit::Value) {
    match t.get_mut(key).and_then(|i| i.as_value_mut()) {
        Some(old) => {
            let decor = old.decor().clone();
            *old = v;
            *old.decor_mut() = decor;
        }
        None => {
            t.insert(key, toml_edit::value(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_value_keeps_its_comment_and_new_tables_follow() {
        let mut doc: DocumentMut = "# top\n[policy]\nenabled = true   # the kill switch\n"
            .parse()
            .unwrap();
        set(
            table(&mut doc, &["policy"]).unwrap(),
            "enabled",
            false.into(),
        );
        set(
            table(&mut doc, &["users", "bob"]).unwrap(),
            "compose_mode",
            "builtin".into(),
        );
        let text = doc.to_string();
        assert!(text.starts_with("# top\n[policy]\n"), "{text}");
        assert!(
            text.contains("enabled = false   # the kill switch"),
            "{text}"
        );
        assert!(
            text.contains("[users.bob]\ncompose_mode = \"builtin\""),
            "{text}"
        );
        assert!(
            !text.contains("[users]\n"),
            "the parent stays implicit: {text}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_config_is_written_through_its_link_with_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.toml");
        std::fs::write(&real, "a = 1\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("mailhost.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_config(&link, "a = 2\n").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "a = 2\n");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file is left");
    }

    #[test]
    fn a_key_that_is_not_a_table_is_an_error() {
        let mut doc: DocumentMut = "users = 1\n".parse().unwrap();
        let e = table(&mut doc, &["users", "bob"]).unwrap_err();
        assert!(e.contains("[users] is not a table"), "{e}");
    }

    #[test]
    fn secret_file_names_stay_in_the_secrets_folder() {
        assert_eq!(secret_file_name("node", "password"), "node.password");
        assert_eq!(secret_file_name("../x", "a/b"), "___x.a_b");
        assert_eq!(secret_ref("node.password"), "file:secrets/node.password");
        assert_eq!(etag("a"), etag("a"));
        assert_ne!(etag("a"), etag("b"));
    }
}
