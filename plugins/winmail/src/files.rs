//! Attachments as temporary files: Simple MAPI and Outlook's `Attachments.Add`
//! take file paths, not bytes.

use std::path::{Path, PathBuf};

use mailhost_plugin_api::{Attachment, PluginError};

/// A private directory holding one message's attachments, removed when dropped
/// (unless [`AttachmentFiles::keep`] hands them to a window that reads them later).
#[derive(Debug)]
pub struct AttachmentFiles {
    dir: Option<PathBuf>,
    files: Vec<(PathBuf, String)>,
}

/// The directory name's prefix under the temporary directory.
pub const PREFIX: &str = "mailhost-attachments-";

/// A file name safe on Windows: no directory, no reserved characters or names,
/// not empty.
pub fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut s: String = base
        .chars()
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c if (c as u32) < 0x20 => '_',
            c => c,
        })
        .collect();
    while s.ends_with(['.', ' ']) {
        s.pop();
    }
    let stem = s.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if s.is_empty() || reserved {
        s = format!(
            "attachment{}",
            if s.is_empty() {
                String::new()
            } else {
                format!("-{s}")
            }
        );
    }
    s
}

impl AttachmentFiles {
    /// Writes `attachments` (inline parts too: Simple MAPI has no other way to
    /// carry them) into a fresh directory under `base`.
    pub fn write(base: &Path, attachments: &[Attachment]) -> Result<Self, PluginError> {
        if attachments.is_empty() {
            return Ok(Self {
                dir: None,
                files: Vec::new(),
            });
        }
        let dir = base.join(format!("{PREFIX}{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| {
            PluginError::transient(format!(
                "cannot create the attachment directory {}: {e}; check the free space and permissions of the temporary directory",
                dir.display()
            ))
        })?;
        let mut me = Self {
            dir: Some(dir.clone()),
            files: Vec::new(),
        };
        for (i, a) in attachments.iter().enumerate() {
            let name = safe_file_name(a.filename.as_str());
            // One subdirectory per file: two attachments may share a name.
            let sub = dir.join(i.to_string());
            let path = sub.join(&name);
            std::fs::create_dir_all(&sub)
                .and_then(|()| std::fs::write(&path, a.data.as_slice()))
                .map_err(|e| {
                    PluginError::transient(format!(
                        "cannot write attachment `{name}` to {}: {e}; check the free space of the temporary directory",
                        path.display()
                    ))
                })?;
            me.files.push((path, a.filename.to_string()));
        }
        Ok(me)
    }

    /// Each file's path and the name the recipient sees.
    pub fn files(&self) -> &[(PathBuf, String)] {
        &self.files
    }

    /// Leaves the files in place (a modeless window reads them after the call
    /// returned); [`cleanup_stale`] removes them at a later start.
    pub fn keep(mut self) {
        self.dir = None;
    }
}

impl Drop for AttachmentFiles {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Removes attachment directories under `base` older than `age` (left by
/// [`AttachmentFiles::keep`] or a crash). Returns how many were removed.
pub fn cleanup_stale(base: &Path, age: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|d| d >= age);
        if old
            && e.file_name().to_string_lossy().starts_with(PREFIX)
            && std::fs::remove_dir_all(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(name: &str, data: &[u8]) -> Attachment {
        Attachment {
            filename: name.into(),
            media_type: "application/octet-stream".into(),
            content_id: "".into(),
            inline: false,
            data: data.to_vec().into(),
        }
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_file_name("..\\..\\evil.exe"), "evil.exe");
        assert_eq!(safe_file_name("a:b?.pdf"), "a_b_.pdf");
        assert_eq!(safe_file_name("CON.txt"), "attachment-CON.txt");
        assert_eq!(safe_file_name("com1"), "attachment-com1");
        assert_eq!(safe_file_name(""), "attachment");
        assert_eq!(safe_file_name("Grüße.txt. "), "Grüße.txt");
    }

    #[test]
    fn files_are_written_and_removed_on_drop() {
        let base = tempfile::tempdir().unwrap();
        let files =
            AttachmentFiles::write(base.path(), &[att("a.txt", b"one"), att("a.txt", b"two")])
                .unwrap();
        let paths: Vec<_> = files.files().iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(std::fs::read(&paths[0]).unwrap(), b"one");
        assert_eq!(std::fs::read(&paths[1]).unwrap(), b"two");
        assert_eq!(files.files()[1].1, "a.txt");
        drop(files);
        assert!(paths.iter().all(|p| !p.exists()));
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }

    #[test]
    fn kept_files_stay_until_cleanup() {
        let base = tempfile::tempdir().unwrap();
        let files = AttachmentFiles::write(base.path(), &[att("x.pdf", b"%PDF")]).unwrap();
        let path = files.files()[0].0.clone();
        files.keep();
        assert!(path.exists());
        assert_eq!(
            cleanup_stale(base.path(), std::time::Duration::from_secs(3600)),
            0
        );
        assert_eq!(cleanup_stale(base.path(), std::time::Duration::ZERO), 1);
        assert!(!path.exists());
    }

    #[test]
    fn no_attachments_no_directory() {
        let base = tempfile::tempdir().unwrap();
        let files = AttachmentFiles::write(base.path(), &[]).unwrap();
        assert!(files.files().is_empty());
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }
}
