//! Why a plugin file did not load, in words an admin can act on.

use abi_stable::library::LibraryError;

use super::FailureKind;

/// Maps abi_stable's error to a kind and a short reason an admin can act on.
pub(super) fn explain(e: &LibraryError) -> (FailureKind, String) {
    match e {
        LibraryError::OpenError { err, .. } => (
            FailureKind::NotALibrary,
            format!("not a loadable library ({err}); remove the file or replace it with a plugin built for this platform"),
        ),
        LibraryError::GetSymbolError { .. } => (
            FailureKind::MissingSymbol,
            "a library without mailhost's root module: not a mailhost plugin (was it built with `export_plugin!`?); remove it from the plugin directory".to_string(),
        ),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => (
            FailureKind::IncompatibleVersion,
            format!(
                "built against plugin-api {actual_version}, this host has {expected_version}; rebuild the plugin against plugin-api {expected_version}"
            ),
        ),
        LibraryError::ParseVersionError(v) => (
            FailureKind::IncompatibleVersion,
            format!("the plugin's plugin-api version cannot be read ({v}); rebuild the plugin"),
        ),
        LibraryError::AbiInstability(err) => (
            FailureKind::AbiMismatch,
            format!(
                "built against a plugin-api whose types differ from this host's; rebuild it against plugin-api {}. abi_stable says:\n{}",
                mailhost_plugin_api::API_VERSION,
                abi_error_lines(&err.to_string())
            ),
        ),
        LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => (
            FailureKind::AbiMismatch,
            format!("built with an incompatible abi_stable ({e}); rebuild the plugin"),
        ),
        LibraryError::RootModule { err, .. } => (
            FailureKind::ManifestFailed,
            format!("the plugin's root module failed to initialise: {err}"),
        ),
        LibraryError::Many(list) => {
            let parts: Vec<(FailureKind, String)> = list.iter().map(explain).collect();
            let kind = parts.first().map(|p| p.0).unwrap_or(FailureKind::AbiMismatch);
            (kind, parts.into_iter().map(|p| p.1).collect::<Vec<_>>().join("\n"))
        }
    }
}

/// From abi_stable's long layout dump (hundreds of lines), only the `Error:`
/// lines — each naming the type it is about — with their `Expected:` and
/// `Found:` values on the same line:
///
/// ```text
/// Error: incompatible type size (in type Manifest)
/// Expected: 264
/// Found: 296
/// ```
pub fn abi_error_lines(dump: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    // The innermost type of the current "N error(s)inside:" path.
    let mut path_type: Option<&str> = None;
    let mut in_path = false;
    // "Expected"/"Found"/"Extra" waiting for its (indented) value lines.
    let mut pending: Option<(&str, Vec<&str>)> = None;
    let flush = |pending: &mut Option<(&str, Vec<&str>)>, out: &mut Vec<String>| {
        if let Some((label, values)) = pending.take() {
            let value = values.into_iter().take(3).collect::<Vec<_>>().join(" ");
            if label == "Extra" {
                out.push(format!("Error: {value}"));
            } else {
                out.push(format!("{label}: {value}"));
            }
        }
    };
    for line in dump.lines() {
        let t = line.trim();
        if t.ends_with("error(s)inside:") {
            flush(&mut pending, &mut out);
            in_path = true;
            path_type = None;
            continue;
        }
        if in_path {
            if t.starts_with("Layout of") || t.starts_with("Error:") {
                in_path = false;
            } else {
                if let Some(ty) = line.strip_prefix("    type:") {
                    path_type = Some(ty.trim());
                }
                continue;
            }
        }
        if pending.is_some() && line.starts_with("    ") && !t.is_empty() {
            if let Some((_, values)) = pending.as_mut() {
                values.push(t);
            }
            continue;
        }
        flush(&mut pending, &mut out);
        if let Some(e) = t.strip_prefix("Error:") {
            let e = e.trim();
            if !e.is_empty() {
                out.push(match path_type {
                    Some(ty) => format!("Error: {e} (in type {ty})"),
                    None => format!("Error: {e}"),
                });
            }
        } else if let Some(label) = ["Expected", "Found", "Extra"]
            .into_iter()
            .find(|l| t.strip_prefix(l) == Some(":"))
        {
            pending = Some((label, Vec::new()));
        }
    }
    flush(&mut pending, &mut out);
    if out.is_empty() {
        dump.lines().take(12).collect::<Vec<_>>().join("\n")
    } else {
        out.dedup();
        out.into_iter().take(40).collect::<Vec<_>>().join("\n")
    }
}
