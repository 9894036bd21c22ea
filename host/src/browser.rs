//! Opening a compose outcome's web link with the desktop's default browser:
//! `xdg-open` (Linux and the BSDs), `open` (macOS), `start` (Windows, through
//! `cmd`). [`opener_for`] is the seam: which command for which OS, without
//! running anything.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for the opener to report (xdg-open and open return once
/// the browser was asked; one still running after this is taken as started).
const WAIT: Duration = Duration::from_secs(10);

/// A command that opens a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opener {
    pub program: &'static str,
    /// Arguments; on Windows passed verbatim (already quoted for `cmd`).
    pub args: Vec<String>,
}

impl Opener {
    /// The command line, for messages.
    pub fn display(&self) -> String {
        std::iter::once(self.program.to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The opener for `os` (a `std::env::consts::OS` value), or `None` where
/// there is no known one. `url` must have passed [`check_url`].
pub fn opener_for(os: &str, url: &str) -> Option<Opener> {
    match os {
        "macos" => Some(Opener {
            program: "open",
            args: vec![url.to_string()],
        }),
        // `start` is a cmd built-in; its first quoted argument is the window
        // title, hence the empty one. The URL is quoted so that `&` in a query
        // is not a command separator (check_url leaves no `"` in it).
        "windows" => Some(Opener {
            program: "cmd",
            args: vec![
                "/C".into(),
                "start".into(),
                "\"\"".into(),
                format!("\"{url}\""),
            ],
        }),
        "linux" | "freebsd" | "openbsd" | "netbsd" | "dragonfly" | "solaris" | "illumos"
        | "android" => Some(Opener {
            program: "xdg-open",
            args: vec![url.to_string()],
        }),
        _ => None,
    }
}

/// Only an `https:` or `http:` link is handed to an opener (never `file:`,
/// `javascript:` or a command-like string); returns it normalised.
pub fn check_url(link: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(link).map_err(|e| {
        format!(
            "the web link `{}` is not a URL ({e}); not opened",
            link.escape_debug()
        )
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!(
            "the web link's scheme is `{}`, not https; not opened",
            url.scheme()
        ));
    }
    let s = url.to_string();
    if s.contains('"') || s.chars().any(char::is_control) {
        return Err("the web link holds a quote or a control character; not opened".into());
    }
    Ok(s)
}

/// Opens `link` with this system's opener. Ok: the command used. Err: what
/// went wrong and what to do (the link is in the message, to open by hand).
pub fn open_link(link: &str) -> Result<String, String> {
    if link.is_empty() {
        return Err("the outcome has no web link to open".into());
    }
    let url = check_url(link)?;
    let opener = opener_for(std::env::consts::OS, &url).ok_or_else(|| {
        format!(
            "no default-browser opener is known on {}; open the link yourself: {url}",
            std::env::consts::OS
        )
    })?;
    run(&opener, &url)
}

fn run(opener: &Opener, url: &str) -> Result<String, String> {
    let mut cmd = Command::new(opener.program);
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt as _;
        for a in &opener.args {
            cmd.raw_arg(a);
        }
    }
    #[cfg(not(windows))]
    cmd.args(&opener.args);
    // The browser must not write into our output (JSON on stdout) nor read our input.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            let hint = match opener.program {
                "xdg-open" => " (on Debian or Ubuntu: apt install xdg-utils)",
                _ => "",
            };
            format!(
                "`{}` was not found: this desktop has no default-browser opener{hint}; open the link yourself: {url}",
                opener.program
            )
        } else {
            format!("cannot run `{}`: {e}; open the link yourself: {url}", opener.program)
        }
    })?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(opener.display()),
            Ok(Some(status)) => {
                let hint = match opener.program {
                    "xdg-open" => {
                        " (no default browser is set? `xdg-settings set default-web-browser NAME.desktop`)"
                    }
                    _ => "",
                };
                return Err(format!(
                    "`{}` failed ({status}){hint}; open the link yourself: {url}",
                    opener.program
                ));
            }
            Ok(None) if start.elapsed() < WAIT => std::thread::sleep(Duration::from_millis(20)),
            // still running: it started the browser and stays with it
            Ok(None) => return Ok(opener.display()),
            Err(e) => {
                return Err(format!(
                    "cannot wait for `{}`: {e}; open the link yourself: {url}",
                    opener.program
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str =
        "https://outlook.office365.com/owa/?ItemID=AAMk%3D&exvsurl=1&viewmodel=ReadMessageItem";

    #[test]
    fn each_desktop_has_its_opener() {
        let url = check_url(LINK).unwrap();
        assert_eq!(url, LINK, "a valid link is kept as it is");
        let linux = opener_for("linux", &url).unwrap();
        assert_eq!(
            (linux.program, linux.args.as_slice()),
            ("xdg-open", [url.clone()].as_slice())
        );
        assert_eq!(opener_for("freebsd", &url).unwrap().program, "xdg-open");
        let mac = opener_for("macos", &url).unwrap();
        assert_eq!(
            (mac.program, mac.args.as_slice()),
            ("open", [url.clone()].as_slice())
        );
        let win = opener_for("windows", &url).unwrap();
        assert_eq!(win.program, "cmd");
        assert_eq!(win.args, ["/C", "start", "\"\"", &format!("\"{url}\"")]);
        assert_eq!(
            win.display(),
            format!("cmd /C start \"\" \"{url}\""),
            "the URL is quoted: `&` is no command separator"
        );
        assert!(opener_for("haiku", &url).is_none());
    }

    #[test]
    fn only_web_links_are_opened() {
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "calc.exe",
            "data:text/html,hi",
            "https://exa mple.com/\"&calc",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        // quotes and spaces in a path or query are percent-encoded, never passed raw
        let q = check_url("https://example.com/a\"b?c=\"d e\"").unwrap();
        assert!(!q.contains('"') && !q.contains(' '), "{q}");
        assert!(open_link("").unwrap_err().contains("no web link"));
    }
}
