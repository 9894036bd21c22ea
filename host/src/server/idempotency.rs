//! The `Idempotency-Key` request header (the IETF HTTP APIs working
//! group's draft, as payment and mail APIs take it): the same as the
//! body's `idempotency_key` (or the query's, beside a `message/rfc822`
//! body), for clients whose HTTP library sets the header.

use axum::http::HeaderMap;

use super::problem::Problem;

pub(super) const HEADER: &str = "idempotency-key";

/// The header's key: a structured-field String (`"…"`, with `\"` and `\\`
/// escapes) as the draft writes it, or a bare value as most clients send.
/// `None` without the header.
pub(super) fn from_header(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad("give Idempotency-Key once"));
    }
    let v = v
        .to_str()
        .map_err(|_| bad("Idempotency-Key must be visible ASCII text"))?
        .trim();
    let key = match v.strip_prefix('"') {
        Some(rest) => unquote(rest).ok_or_else(|| {
            bad("Idempotency-Key starts with a quote but is not a quoted string (\"…\", with \\\" and \\\\ inside)")
        })?,
        None => v.to_string(),
    };
    if key.is_empty() {
        return Err(bad(
            "Idempotency-Key is empty: give a key, e.g. the invoice number",
        ));
    }
    Ok(Some(key))
}

/// The rest of a quoted string after its opening quote, unescaped; `None`
/// if it does not end with the closing quote or has a bad escape.
fn unquote(rest: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                c @ ('"' | '\\') => out.push(c),
                _ => return None,
            },
            '"' => return chars.next().is_none().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// The key a request asks for: the body's (or query's) and the header's
/// must agree when both are given.
pub(super) fn merge(
    given: Option<String>,
    header: Option<String>,
    field: &str,
) -> Result<Option<String>, Problem> {
    match (given, header) {
        (Some(g), Some(h)) if g != h => Err(bad(&format!(
            "the Idempotency-Key header (`{}`) and {field} (`{}`) differ; give the key once",
            crate::limits::shown(&h),
            crate::limits::shown(&g)
        ))),
        (g, h) => Ok(g.or(h)),
    }
}

fn bad(detail: &str) -> Problem {
    Problem::bad_request("bad-field", detail.to_string())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn bare_and_quoted_keys_are_read_and_bad_ones_refused() {
        assert_eq!(from_header(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            from_header(&with(&[b"inv-4711"])).unwrap().as_deref(),
            Some("inv-4711")
        );
        assert_eq!(
            from_header(&with(&[b"\"8e03978e-40d5\""]))
                .unwrap()
                .as_deref(),
            Some("8e03978e-40d5")
        );
        assert_eq!(
            from_header(&with(&[br#""a\"b\\c""#])).unwrap().as_deref(),
            Some("a\"b\\c")
        );
        for bad in [
            &b"\"open"[..],
            b"\"a\"b\"",
            b"\"\\x\"",
            b"\"\"",
            b"  ",
            b"\xff",
        ] {
            let e = from_header(&with(&[bad])).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad:?}");
        }
        assert!(from_header(&with(&[b"a", b"b"])).is_err());
    }

    #[test]
    fn the_header_and_the_field_must_agree() {
        assert_eq!(
            merge(None, Some("k".into()), "x").unwrap().as_deref(),
            Some("k")
        );
        assert_eq!(
            merge(Some("k".into()), None, "x").unwrap().as_deref(),
            Some("k")
        );
        assert_eq!(
            merge(Some("k".into()), Some("k".into()), "x")
                .unwrap()
                .as_deref(),
            Some("k")
        );
        let e = merge(Some("a".into()), Some("b".into()), "`idempotency_key`").unwrap_err();
        assert!(e.detail.contains("differ"), "{}", e.detail);
    }
}
