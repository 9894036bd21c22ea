//! HTML to plain text, for Simple MAPI (which has no HTML body): the text a
//! reader sees, with paragraphs, line breaks, list items and link targets kept.

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "copy" => '©',
        "reg" => '®',
        "euro" => '€',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "laquo" => '«',
        "raquo" => '»',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        _ => return None,
    })
}

/// The value of attribute `name` in a tag's inside (`a href="x"`).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let start = tag.len() - rest.len() + 1;
        let value = tag[start..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or("").to_string(),
            _ => value.split_whitespace().next().unwrap_or("").to_string(),
        });
    }
    None
}

/// Converts an HTML body to the text a reader would see.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut skip_until: Option<&'static str> = None;
    let mut link: Option<String> = None;
    let mut pending_space = false;
    let mut rest = html;
    while !rest.is_empty() {
        if let Some(end) = skip_until {
            match rest.to_ascii_lowercase().find(end) {
                Some(i) => {
                    rest = &rest[i..];
                    skip_until = None;
                }
                None => break,
            }
            continue;
        }
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        if let Some((after, close)) = rest
            .strip_prefix('<')
            .filter(|a| a.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!'))
            .and_then(|a| a.find('>').map(|c| (a, c)))
        {
            let inside = &after[..close];
            rest = &after[close + 1..];
            let closing = inside.starts_with('/');
            let name: String = inside
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            match (name.as_str(), closing) {
                ("script", false) => skip_until = Some("</script"),
                ("style", false) => skip_until = Some("</style"),
                ("head", false) => skip_until = Some("</head"),
                ("br", _) => {
                    out.push('\n');
                    pending_space = false;
                }
                ("li", false) => {
                    newline(&mut out);
                    out.push_str("- ");
                    pending_space = false;
                }
                ("a", false) => link = attribute(inside, "href"),
                ("a", true) => {
                    if let Some(href) = link.take() {
                        if !href.is_empty() && !href.starts_with('#') && !out.ends_with(&href) {
                            out.push_str(&format!(" <{}>", href.trim_start_matches("mailto:")));
                        }
                    }
                }
                ("td" | "th", true) => {
                    out.push('\t');
                    pending_space = false;
                }
                (
                    "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "ul" | "ol"
                    | "blockquote" | "pre" | "hr",
                    _,
                ) => {
                    paragraph(&mut out);
                    pending_space = false;
                }
                ("tr", _) => {
                    newline(&mut out);
                    pending_space = false;
                }
                _ => {}
            }
            continue;
        }
        let mut chars = rest.chars();
        let Some(c) = chars.next() else { break };
        rest = chars.as_str();
        let c = if c == '&' {
            let name_len = rest.find(';').filter(|&i| i <= 10);
            match name_len.and_then(|i| entity(&rest[..i]).map(|e| (i, e))) {
                Some((i, e)) => {
                    rest = &rest[i + 1..];
                    e
                }
                None => '&',
            }
        } else {
            c
        };
        if c.is_whitespace() && c != '\u{a0}' {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() && !out.ends_with(['\n', ' ', '\t']) {
            out.push(' ');
        }
        pending_space = false;
        out.push(if c == '\u{a0}' { ' ' } else { c });
    }
    tidy(&out)
}

fn newline(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn paragraph(out: &mut String) {
    newline(out);
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
}

/// Trailing blanks off each line, at most one empty line in a row, no
/// leading or trailing empty lines.
fn tidy(text: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_breaks_and_whitespace() {
        let t = html_to_text("<html><head><title>x</title></head><body><p>Hello\n   <b>World</b></p><p>line<br>two</p></body></html>");
        assert_eq!(t, "Hello World\r\n\r\nline\r\ntwo");
    }

    #[test]
    fn entities_lists_and_links() {
        let t = html_to_text(
            "<p>Gr&uuml;&szlig;e &amp; &#8364;5 &#x263A;</p><ul><li>one</li><li>two</li></ul><a href=\"https://x.example/a\">the link</a>",
        );
        assert_eq!(
            t,
            "Grüße & €5 ☺\r\n\r\n- one\r\n- two\r\n\r\nthe link <https://x.example/a>"
        );
    }

    #[test]
    fn script_style_and_comments_are_dropped() {
        let t = html_to_text(
            "<style>p{color:red}</style><!-- hidden --><p>seen</p><script>alert(1)</script>",
        );
        assert_eq!(t, "seen");
    }

    #[test]
    fn unknown_entities_and_stray_brackets_stay() {
        assert_eq!(html_to_text("a &bogus; b & c"), "a &bogus; b & c");
        assert_eq!(html_to_text("1 < 2"), "1 < 2");
    }

    #[test]
    fn mailto_links_show_the_address() {
        assert_eq!(
            html_to_text("<a href='mailto:x@example.com'>write</a>"),
            "write <x@example.com>"
        );
    }
}
