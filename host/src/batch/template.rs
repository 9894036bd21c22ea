//! The batch template (subject, text and/or HTML body) rendered per row with
//! minijinja: strict undefined (a field the row lacks is an error naming the
//! row and the field), HTML escaping in the HTML part only, and a bound on the
//! work one render may do.

use std::collections::BTreeSet;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use super::{Row, RowError};

/// Instructions one row's render may run (a loop over a huge range stops here).
const FUEL: u64 = 1_000_000;

/// What every message of a batch is made of; fields as `{{ name }}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The subject (one line once rendered).
    #[serde(default)]
    pub subject: String,
    /// The plain-text body.
    #[serde(default)]
    pub text: Option<String>,
    /// The HTML body (fields are HTML-escaped; `{{ x|safe }}` opts out).
    #[serde(default)]
    pub html: Option<String>,
    /// From (not templated); default: the account's `from`.
    #[serde(default)]
    pub from: Option<String>,
}

/// One row's message parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// The compiled template.
pub struct Renderer {
    env: Environment<'static>,
    /// Per part: the top-level names it reads.
    uses: Vec<(&'static str, BTreeSet<String>)>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("uses", &self.uses)
            .finish()
    }
}

const PARTS: [&str; 3] = ["subject", "text", "html"];

impl Renderer {
    /// Compiles the template; a syntax error names the part and line.
    pub fn new(t: &Template) -> Result<Renderer, RowError> {
        if t.text.is_none() && t.html.is_none() {
            return Err(RowError::whole(
                "the template has no body: give a text and/or an HTML part",
            ));
        }
        if t.subject.trim().is_empty() {
            return Err(RowError::whole("the template has no subject"));
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name == "html" {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_fuel(Some(FUEL));
        let mut uses = Vec::new();
        for (name, src) in [
            ("subject", Some(&t.subject)),
            ("text", t.text.as_ref()),
            ("html", t.html.as_ref()),
        ] {
            let Some(src) = src else { continue };
            if src.contains('\0') {
                return Err(RowError::whole(format!(
                    "the {name} template contains a NUL character"
                )));
            }
            env.add_template_owned(name, src.clone())
                .map_err(|e| RowError::whole(format!("the {name} template: {}", describe(&e))))?;
            let tmpl = env
                .get_template(name)
                .map_err(|e| RowError::whole(format!("the {name} template: {}", describe(&e))))?;
            // Names the row must give: those the template reads, less the engine's own (`range`, ...).
            let names: BTreeSet<String> = tmpl
                .undeclared_variables(false)
                .into_iter()
                .filter(|n| !env.globals().any(|(g, _)| g == n))
                .collect();
            uses.push((name, names));
        }
        Ok(Renderer { env, uses })
    }

    /// The fields the template reads.
    pub fn fields(&self) -> BTreeSet<String> {
        self.uses
            .iter()
            .flat_map(|(_, n)| n.iter().cloned())
            .collect()
    }

    /// Renders one row. A field the row lacks, a render error, or a line
    /// break / NUL in the subject is an error naming the row.
    pub fn render(&self, row: &Row) -> Result<Rendered, RowError> {
        for (part, names) in &self.uses {
            if let Some(missing) = names.iter().find(|n| !row.fields.contains_key(*n)) {
                return Err(RowError::field(
                    row.line,
                    missing,
                    format_args!("is missing (the {part} template uses it); add it to the row or remove it from the template"),
                ));
            }
        }
        let ctx = minijinja::Value::from_serialize(&row.fields);
        let mut out = Rendered {
            subject: String::new(),
            text: None,
            html: None,
        };
        for part in PARTS {
            let Ok(tmpl) = self.env.get_template(part) else {
                continue;
            };
            let s = tmpl.render(&ctx).map_err(|e| {
                RowError::line(row.line, format!("the {part} template: {}", describe(&e)))
            })?;
            match part {
                "subject" => out.subject = s,
                "text" => out.text = Some(s),
                _ => out.html = Some(s),
            }
        }
        if out.subject.contains(['\r', '\n']) {
            return Err(RowError::line(
                row.line,
                "the rendered subject contains a line break (CR or LF) from a field, which would inject header lines; remove it from the row",
            ));
        }
        let nul = [Some(&out.subject), out.text.as_ref(), out.html.as_ref()]
            .into_iter()
            .flatten()
            .any(|s| s.contains('\0'));
        if nul {
            return Err(RowError::line(
                row.line,
                "the rendered message contains a NUL character",
            ));
        }
        Ok(out)
    }
}

/// A minijinja error in one line: what, and where in the template.
fn describe(e: &minijinja::Error) -> String {
    let mut s = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(line: usize, v: serde_json::Value) -> Row {
        Row {
            line,
            to: vec!["a@example.com".into()],
            cc: vec![],
            bcc: vec![],
            fields: v.as_object().cloned().unwrap_or_default(),
        }
    }

    fn t(subject: &str, text: Option<&str>, html: Option<&str>) -> Template {
        Template {
            subject: subject.into(),
            text: text.map(str::to_string),
            html: html.map(str::to_string),
            from: None,
        }
    }

    #[test]
    fn fields_fill_the_parts_and_html_only_is_escaped() {
        let r = Renderer::new(&t(
            "Invoice {{ number }}",
            Some("Dear {{ name }},"),
            Some("<p>Dear {{ name }}</p>"),
        ))
        .unwrap();
        let out = r
            .render(&row(1, json!({"name": "Tom & <Jerry>", "number": 42})))
            .unwrap();
        assert_eq!(out.subject, "Invoice 42");
        assert_eq!(out.text.as_deref(), Some("Dear Tom & <Jerry>,"));
        assert_eq!(
            out.html.as_deref(),
            Some("<p>Dear Tom &amp; &lt;Jerry&gt;</p>")
        );
        assert_eq!(
            r.fields().into_iter().collect::<Vec<_>>(),
            vec!["name", "number"]
        );
    }

    #[test]
    fn a_missing_field_names_the_row_and_the_field() {
        let r = Renderer::new(&t("Hi {{ name }}", Some("{{ greeting }}"), None)).unwrap();
        let e = r.render(&row(7, json!({"name": "Ann"}))).unwrap_err();
        assert_eq!(e.row, 7);
        assert_eq!(e.field.as_deref(), Some("greeting"));
        assert!(
            e.to_string()
                .starts_with("line 7: field `greeting` is missing"),
            "{e}"
        );
        // nested: strict undefined still refuses
        let r = Renderer::new(&t("Hi {{ user.name }}", Some("x"), None)).unwrap();
        let e = r.render(&row(3, json!({"user": {}}))).unwrap_err();
        assert!(
            e.to_string().starts_with("line 3: the subject template: "),
            "{e}"
        );
    }

    #[test]
    fn a_subject_with_a_line_break_is_refused() {
        let r = Renderer::new(&t("Hi {{ name }}", Some("x"), None)).unwrap();
        let e = r
            .render(&row(2, json!({"name": "x\r\nBcc: evil@example.com"})))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("line 2: the rendered subject contains a line break"),
            "{e}"
        );
    }

    #[test]
    fn bad_templates_and_runaway_loops_are_errors() {
        let e = Renderer::new(&t("Hi {{ name", Some("x"), None)).unwrap_err();
        assert!(e.to_string().contains("the subject template"), "{e}");
        assert!(Renderer::new(&t("Hi", None, None)).is_err());
        let r = Renderer::new(&t(
            "Hi",
            Some("{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}"),
            None,
        ))
        .unwrap();
        let e = r.render(&row(1, json!({}))).unwrap_err();
        assert!(e.to_string().contains("line 1: the text template"), "{e}");
    }
}
