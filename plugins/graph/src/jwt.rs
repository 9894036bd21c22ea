//! Reads (never verifies) the claims of an Entra ID access token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// The claims `check()` looks at.
#[derive(Debug, Default, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub aud: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub exp: Option<u64>,
    #[serde(default)]
    pub tid: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
}

/// The payload of a JWT-shaped token, or why it could not be read.
pub fn claims(token: &str) -> Result<Claims, String> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the access token is not a JWT (three dot-separated parts)".into());
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("the token's payload is not base64url: {e}"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("the token's payload is not JSON claims: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_roles() {
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"aud":"https://graph.microsoft.com","roles":["Mail.Send"],"exp":5}"#);
        let c = claims(&format!("eyJ0eXAiOiJKV1QifQ.{payload}.sig")).unwrap();
        assert_eq!(c.roles, ["Mail.Send"]);
        assert_eq!(c.aud, "https://graph.microsoft.com");
        assert!(claims("opaque-token").is_err());
    }
}
