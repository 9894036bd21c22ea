//! Folders: LIST, finding Drafts and Sent (SPECIAL-USE, RFC 6154, then the
//! names clients commonly use), CREATE, and APPEND with UIDPLUS.

use mailhost_plugin_api::PluginError;

use crate::client::{quote, strip_prefix_ci, Conn, Status};
use crate::{error, utf7};

/// A folder as LIST shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The name as the server spells it (modified UTF-7).
    pub wire: String,
    /// The name decoded for people.
    pub name: String,
    /// Attributes, e.g. `\Drafts`, `\Noselect`.
    pub attrs: Vec<String>,
    /// The hierarchy delimiter, if the server has one.
    pub delim: Option<char>,
}

impl Folder {
    fn has_attr(&self, a: &str) -> bool {
        self.attrs.iter().any(|x| x.eq_ignore_ascii_case(a))
    }
}

/// Which folder a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Drafts,
    Sent,
}

impl Role {
    pub fn attr(self) -> &'static str {
        match self {
            Role::Drafts => "\\Drafts",
            Role::Sent => "\\Sent",
        }
    }

    pub fn setting(self) -> &'static str {
        match self {
            Role::Drafts => "drafts_folder",
            Role::Sent => "sent_folder",
        }
    }

    /// Names mail clients and providers use, most common first.
    fn names(self) -> &'static [&'static str] {
        match self {
            Role::Drafts => &[
                "Drafts",
                "Draft",
                "Entwürfe",
                "[Gmail]/Drafts",
                "[Google Mail]/Entwürfe",
                "Brouillons",
                "Borradores",
                "Bozze",
                "Concepten",
            ],
            Role::Sent => &[
                "Sent",
                "Sent Items",
                "Sent Messages",
                "Sent Mail",
                "Gesendete Elemente",
                "Gesendet",
                "Gesendete Objekte",
                "[Gmail]/Sent Mail",
                "[Google Mail]/Gesendet",
                "Éléments envoyés",
                "Enviados",
                "Posta inviata",
                "Verzonden items",
            ],
        }
    }

    /// The name to create when none is found.
    fn default_name(self) -> &'static str {
        match self {
            Role::Drafts => "Drafts",
            Role::Sent => "Sent",
        }
    }
}

/// Reads one astring/nstring token (atom, quoted string or NIL) from `s`.
fn token(s: &str) -> Option<(Option<String>, &str)> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?.1),
                '"' => return Some((Some(out), &rest[i + 1..])),
                c => out.push(c),
            }
        }
        None
    } else {
        let end = s.find(' ').unwrap_or(s.len());
        let atom = &s[..end];
        if atom.is_empty() {
            return None;
        }
        let v = (!atom.eq_ignore_ascii_case("NIL")).then(|| atom.to_string());
        Some((v, &s[end..]))
    }
}

/// Parses `* LIST (\HasNoChildren \Drafts) "/" "Drafts"`.
pub fn parse_list(line: &str) -> Option<Folder> {
    let rest = strip_prefix_ci(line, "* LIST ")?.trim_start();
    let rest = rest.strip_prefix('(')?;
    let close = rest.find(')')?;
    let attrs = rest[..close]
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect();
    let (delim, rest) = token(&rest[close + 1..])?;
    let (wire, _) = token(rest)?;
    let wire = wire?;
    let name = utf7::decode(&wire).unwrap_or_else(|| wire.clone());
    Some(Folder {
        wire,
        name,
        attrs,
        delim: delim.and_then(|d| d.chars().next()),
    })
}

/// All folders (with SPECIAL-USE attributes where the server has them).
pub async fn list(conn: &mut Conn) -> Result<(Vec<Folder>, String), PluginError> {
    let cmd = if conn.has("SPECIAL-USE") && conn.has("LIST-EXTENDED") {
        r#"LIST "" "*" RETURN (SPECIAL-USE)"#
    } else {
        r#"LIST "" "*""#
    };
    let r = conn.command(cmd, "LIST").await?;
    if r.status != Status::Ok {
        return Err(error::refused(&conn.addr, "LIST", &r));
    }
    let folders = r.untagged.iter().filter_map(|l| parse_list(l)).collect();
    Ok((folders, r.line()))
}

fn same(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

/// How a folder was found, for `check()` and the outcome's details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Configured,
    SpecialUse,
    CommonName,
    Created,
}

impl Found {
    pub fn name(self) -> &'static str {
        match self {
            Found::Configured => "configured",
            Found::SpecialUse => "special-use",
            Found::CommonName => "common name",
            Found::Created => "created",
        }
    }
}

/// Picks the folder for `role`: the configured name, the SPECIAL-USE
/// attribute, then the common names (also below `INBOX.`/`INBOX/`).
pub fn pick<'a>(
    folders: &'a [Folder],
    role: Role,
    configured: Option<&str>,
) -> Option<(&'a Folder, Found)> {
    let usable = |f: &&Folder| !f.has_attr("\\Noselect") && !f.has_attr("\\NonExistent");
    if let Some(name) = configured {
        return folders
            .iter()
            .filter(usable)
            .find(|f| same(&f.name, name))
            .map(|f| (f, Found::Configured));
    }
    if let Some(f) = folders
        .iter()
        .filter(usable)
        .find(|f| f.has_attr(role.attr()))
    {
        return Some((f, Found::SpecialUse));
    }
    for candidate in role.names() {
        let hit = folders.iter().filter(usable).find(|f| {
            f.name.eq_ignore_ascii_case(candidate)
                || f.delim.is_some_and(|d| {
                    f.name
                        .to_lowercase()
                        .strip_prefix("inbox")
                        .and_then(|r| r.strip_prefix(d))
                        .is_some_and(|r| r == candidate.to_lowercase())
                })
        });
        if let Some(f) = hit {
            return Some((f, Found::CommonName));
        }
    }
    None
}

/// The name to create for `role`: the configured one, or the default placed
/// below INBOX when the server keeps every folder there (`INBOX.Sent`).
pub fn name_to_create(folders: &[Folder], role: Role, configured: Option<&str>) -> String {
    if let Some(c) = configured {
        return c.to_string();
    }
    let others: Vec<&Folder> = folders
        .iter()
        .filter(|f| !f.name.eq_ignore_ascii_case("INBOX"))
        .collect();
    let below_inbox = !others.is_empty()
        && others.iter().all(|f| {
            f.delim
                .is_some_and(|d| f.name.to_lowercase().starts_with(&format!("inbox{d}")))
        });
    match (below_inbox, folders.iter().find_map(|f| f.delim)) {
        (true, Some(d)) => format!("INBOX{d}{}", role.default_name()),
        _ => role.default_name().to_string(),
    }
}

pub async fn create(conn: &mut Conn, name: &str) -> Result<(), PluginError> {
    let cmd = format!("CREATE {}", quote(&utf7::encode(name)));
    let r = conn.command(&cmd, "CREATE").await?;
    if r.status != Status::Ok {
        return Err(PluginError::config(format!(
            "imap: {} refused to create folder {name:?}: {}; create it in a mail client or set `{}`",
            conn.addr,
            r.line(),
            "drafts_folder/sent_folder"
        )));
    }
    // Mark it subscribed so that mail clients show it; a refusal does not matter.
    let _ = conn
        .command(
            &format!("SUBSCRIBE {}", quote(&utf7::encode(name))),
            "SUBSCRIBE",
        )
        .await;
    Ok(())
}

/// Finds (or, when configured to, creates) the folder for `role`.
pub async fn resolve(
    conn: &mut Conn,
    role: Role,
    configured: Option<&str>,
    create_folders: bool,
) -> Result<(Folder, Found), PluginError> {
    let (folders, _) = list(conn).await?;
    if let Some((f, how)) = pick(&folders, role, configured) {
        return Ok((f.clone(), how));
    }
    if create_folders {
        let name = name_to_create(&folders, role, configured);
        create(conn, &name).await?;
        let wire = utf7::encode(&name);
        return Ok((
            Folder {
                wire,
                name,
                attrs: Vec::new(),
                delim: folders.iter().find_map(|f| f.delim),
            },
            Found::Created,
        ));
    }
    let seen: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
    Err(match configured {
        Some(name) => PluginError::config(format!(
            "imap: folder {name:?} (setting `{}`) does not exist on {}; folders there: {}; fix the name or set `create_folders = true`",
            role.setting(),
            conn.addr,
            seen.join(", ")
        )),
        None => PluginError::config(format!(
            "imap: no {} folder on {}: none is marked {} (SPECIAL-USE) and none has a common name; folders there: {}; set `{}` or `create_folders = true`",
            role.default_name(),
            conn.addr,
            role.attr(),
            seen.join(", "),
            role.setting()
        )),
    })
}

/// Where an APPEND put the message (UIDPLUS `APPENDUID`, when offered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub uidvalidity: Option<u32>,
    pub uid: Option<u32>,
    /// The server's tagged reply.
    pub reply: String,
}

fn appenduid(code: Option<&str>) -> (Option<u32>, Option<u32>) {
    let Some(rest) = code.and_then(|c| strip_prefix_ci(c, "APPENDUID ")) else {
        return (None, None);
    };
    let mut it = rest.split_ascii_whitespace();
    let v = it.next().and_then(|v| v.parse().ok());
    let u = it.next().and_then(|u| u.parse().ok());
    (v, u)
}

/// APPEND `message` to `folder` with `flags` (e.g. `\Draft \Seen`).
pub async fn append(
    conn: &mut Conn,
    folder: &Folder,
    flags: &str,
    message: &[u8],
) -> Result<Appended, PluginError> {
    if message.is_empty() {
        return Err(PluginError::permanent(
            "imap: the message is empty; nothing to store",
        ));
    }
    let non_sync = conn.has("LITERAL+") || (conn.has("LITERAL-") && message.len() <= 4096);
    let head = format!(
        "APPEND {} ({flags}) {{{}{}}}",
        quote(&folder.wire),
        message.len(),
        if non_sync { "+" } else { "" }
    );
    let stage = format!("APPEND to {:?}", folder.name);
    let r = if non_sync {
        let mut first = head.into_bytes();
        first.extend_from_slice(b"\r\n");
        first.extend_from_slice(message);
        conn.exchange(&first, Vec::new(), &stage).await?
    } else {
        conn.exchange(head.as_bytes(), vec![message.to_vec()], &stage)
            .await?
    };
    if r.status != Status::Ok {
        return Err(error::append(&conn.addr, &folder.name, &r));
    }
    let (uidvalidity, uid) = appenduid(r.code());
    Ok(Appended {
        uidvalidity,
        uid,
        reply: r.line(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(line: &str) -> Folder {
        parse_list(line).unwrap()
    }

    #[test]
    fn parses_list_lines() {
        let d = f(r#"* LIST (\HasNoChildren \Drafts) "/" "Drafts""#);
        assert_eq!(d.name, "Drafts");
        assert_eq!(d.delim, Some('/'));
        assert!(d.has_attr("\\drafts"));
        let e = f(r#"* LIST (\HasNoChildren) "." INBOX.Entw&APw-rfe"#);
        assert_eq!(e.wire, "INBOX.Entw&APw-rfe");
        assert_eq!(e.name, "INBOX.Entwürfe");
        let n = f(r#"* LIST (\Noselect) NIL "a \"b\"""#);
        assert_eq!((n.name.as_str(), n.delim), ("a \"b\"", None));
    }

    #[test]
    fn picks_special_use_then_names() {
        let folders = vec![
            f(r#"* LIST (\HasNoChildren) "/" "INBOX""#),
            f(r#"* LIST (\HasNoChildren) "/" "Drafts""#),
            f(r#"* LIST (\HasNoChildren \Drafts) "/" "Entw&APw-rfe""#),
        ];
        let (d, how) = pick(&folders, Role::Drafts, None).unwrap();
        assert_eq!((d.name.as_str(), how), ("Entwürfe", Found::SpecialUse));
        assert!(pick(&folders, Role::Sent, None).is_none());

        let inbox_style = vec![
            f(r#"* LIST (\HasChildren) "." "INBOX""#),
            f(r#"* LIST (\HasNoChildren) "." "INBOX.Gesendete Elemente""#),
            f(r#"* LIST (\HasNoChildren) "." "INBOX.Entw&APw-rfe""#),
        ];
        let (s, how) = pick(&inbox_style, Role::Sent, None).unwrap();
        assert_eq!(
            (s.wire.as_str(), how),
            ("INBOX.Gesendete Elemente", Found::CommonName)
        );
        let (d, _) = pick(&inbox_style, Role::Drafts, None).unwrap();
        assert_eq!(d.wire, "INBOX.Entw&APw-rfe");
        assert_eq!(
            name_to_create(&inbox_style, Role::Drafts, None),
            "INBOX.Drafts"
        );
        assert_eq!(name_to_create(&folders, Role::Sent, None), "Sent");

        let (c, how) = pick(&folders, Role::Drafts, Some("Drafts")).unwrap();
        assert_eq!((c.name.as_str(), how), ("Drafts", Found::Configured));
        assert!(pick(&folders, Role::Drafts, Some("Nope")).is_none());
    }

    #[test]
    fn append_uids() {
        assert_eq!(
            appenduid(Some("APPENDUID 1700000000 42")),
            (Some(1_700_000_000), Some(42))
        );
        assert_eq!(appenduid(Some("READ-WRITE")), (None, None));
    }
}
