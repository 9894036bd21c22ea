//! `check()`: the "Test settings" steps (token and its roles, the mailbox),
//! each with its outcome and Graph's words.

use super::*;

impl Inner {
    pub(super) async fn check(&self, options_json: &str) -> Result<CheckReport, PluginError> {
        let mut report = CheckReport::new();
        let opts = RequestOptions::from_json(options_json)?;
        let mailbox = opts
            .host
            .mailbox
            .unwrap_or_else(|| self.config.mailbox.clone());

        let started = Instant::now();
        let token = match self.token(false).await {
            Ok(t) => {
                report.push(
                    "token",
                    StepOutcome::OK,
                    &format!(
                        "[oauth.{}] issued an access token for {}",
                        self.config.oauth, self.config.scope
                    ),
                    "",
                    ms(started),
                );
                t
            }
            Err(e) => {
                report.push("token", StepOutcome::FAILED, e.message(), "", ms(started));
                report.push("permissions", StepOutcome::SKIPPED, "no token", "", 0);
                report.push("mailbox", StepOutcome::SKIPPED, "no token", "", 0);
                return Ok(report);
            }
        };

        let started = Instant::now();
        match jwt::claims(&token) {
            Ok(claims) => {
                let roles = claims.roles.join(", ");
                let server = format!(
                    "roles: [{roles}]; aud: {}; appid: {}; tid: {}; exp: {}",
                    claims.aud,
                    claims.appid.as_deref().unwrap_or("-"),
                    claims.tid.as_deref().unwrap_or("-"),
                    claims
                        .exp
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "-".into())
                );
                let has = |r: &str| claims.roles.iter().any(|x| x.eq_ignore_ascii_case(r));
                if !has("Mail.Send") {
                    report.push(
                        "permissions",
                        StepOutcome::FAILED,
                        "the token has no Mail.Send role: the app lacks the Mail.Send application permission or admin consent was not granted — add it under API permissions (Microsoft Graph, Application) and grant admin consent",
                        &server,
                        ms(started),
                    );
                } else if !has("Mail.ReadWrite") {
                    report.push(
                        "permissions",
                        StepOutcome::WARNING,
                        "Mail.Send is granted but Mail.ReadWrite is not (or lacks admin consent): sending small messages works; drafts (m365-draft) and messages over 4 MB will fail — add Mail.ReadWrite and grant admin consent",
                        &server,
                        ms(started),
                    );
                } else {
                    report.push(
                        "permissions",
                        StepOutcome::OK,
                        "Mail.Send and Mail.ReadWrite are granted",
                        &server,
                        ms(started),
                    );
                }
            }
            Err(why) => report.push(
                "permissions",
                StepOutcome::WARNING,
                &format!(
                    "cannot read the token's roles ({why}); the mailbox call below still tests it"
                ),
                "",
                ms(started),
            ),
        }

        let started = Instant::now();
        let answer = self
            .request(
                &mailbox,
                Method::GET,
                &["users", &mailbox],
                Some("$select=id,displayName,mail,userPrincipalName"),
                &Payload::None,
            )
            .await;
        match answer {
            Ok(a) if a.status.is_success() => {
                let user: Value = serde_json::from_slice(&a.body).unwrap_or_default();
                let name = user["displayName"].as_str().unwrap_or_default();
                let mail = user["mail"]
                    .as_str()
                    .or(user["userPrincipalName"].as_str())
                    .unwrap_or(&mailbox);
                report.push(
                    "mailbox",
                    StepOutcome::OK,
                    &format!("mailbox {mail} ({name}) found"),
                    &String::from_utf8_lossy(&a.body),
                    ms(started),
                );
            }
            Ok(a) if a.status == StatusCode::FORBIDDEN => {
                let (code, message) = error::parse_error(&a.body);
                report.push(
                    "mailbox",
                    StepOutcome::WARNING,
                    &format!("the app may not read user objects (needs User.Read.All), so whether {mailbox} exists is not confirmed; sending does not need it"),
                    &format!("{} {code}: {message}", a.status.as_u16()),
                    ms(started),
                );
            }
            Ok(a) => {
                let e = error::classify(
                    a.status,
                    &a.headers,
                    &a.body,
                    Op::ReadMailbox,
                    &a.what,
                    &mailbox,
                );
                let (code, message) = error::parse_error(&a.body);
                report.push(
                    "mailbox",
                    StepOutcome::FAILED,
                    e.message(),
                    &format!("{} {code}: {message}", a.status.as_u16()),
                    ms(started),
                );
            }
            Err(e) => report.push("mailbox", StepOutcome::FAILED, e.message(), "", ms(started)),
        }
        Ok(report)
    }
}

pub(super) fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}
