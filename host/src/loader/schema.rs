//! Settings JSON Schemas: compiling one the way the host validates with it,
//! a pass that compiles none ([`without_compiling`], how `serve` loads), and
//! reading a plugin's `validate_settings` answer.

use mailhost_plugin_api::settings::SettingsProblem;

/// The `validate_settings` answer (`{"problems": [...]}`) → problems;
/// anything else is itself a problem (the plugin broke the contract).
pub fn parse_problems(text: &str) -> Vec<SettingsProblem> {
    match serde_json::from_str::<mailhost_plugin_api::settings::Problems>(text) {
        Ok(p) => p.problems,
        Err(e) => vec![SettingsProblem::general(format!(
            "its validate_settings answered something other than {{\"problems\": [...]}} ({e}); report this to the plugin's author"
        ))],
    }
}

thread_local! {
    /// `Some(needed)` while [`without_compiling`] runs on this thread.
    static COMPILING_DEFERRED: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with no settings schema compiled on this thread: where a check
/// needs one (a schema or settings this host has not found valid before,
/// [`crate::checked`]), [`compile_schema`] fails instead and the pass is
/// marked. Returns what `f` returned and whether it needed a schema
/// compiled; when it did, its result is incomplete and must be thrown away.
/// When it did not, its result is exactly what a normal pass gives.
///
/// `mailhost serve` loads this way first, so that a long-running process
/// whose config is known valid never loads the schema library's static data.
pub fn without_compiling<T>(f: impl FnOnce() -> T) -> (T, bool) {
    /// Puts back the outer state (a nested pass that needed a schema marks it too).
    struct Reset(Option<bool>);
    impl Drop for Reset {
        fn drop(&mut self) {
            COMPILING_DEFERRED.with(|d| {
                let needed = d.get() == Some(true);
                d.set(self.0.map(|outer| outer || needed));
            });
        }
    }
    let _reset = Reset(COMPILING_DEFERRED.with(|d| d.replace(Some(false))));
    let out = f();
    let needed = COMPILING_DEFERRED.with(|d| d.get()) == Some(true);
    (out, needed)
}

/// Compiles a settings schema the way the host validates with it: with
/// `format` checked (`uri`, `hostname`, `email`, ...; `path` and `secret`
/// are the host's own and accepted as any string).
///
/// A schema that uses only keywords draft 7 already has (properties,
/// required, enum, pattern, ranges, formats — every bundled plugin's) is
/// compiled as draft 7, which means the same for them. jsonschema otherwise
/// checks the schema against the draft 2020-12 meta-schema, whose dynamic
/// references take about half the CPU of a one-shot `mailhost send` to
/// compile; a schema with a 2019-09/2020-12 keyword gets that full treatment.
pub fn compile_schema(schema: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    if COMPILING_DEFERRED.with(|d| d.get().is_some()) {
        COMPILING_DEFERRED.with(|d| d.set(Some(true)));
        return Err("not compiled: this pass only uses what this host found valid before".into());
    }
    tracing::debug!("compiling a settings JSON Schema");
    let mut options = jsonschema::options()
        .should_validate_formats(true)
        .with_format("path", |_: &str| true)
        .with_format("secret", |_: &str| true);
    if !uses_newer_keywords(schema) {
        options = options.with_draft(jsonschema::Draft::Draft7);
    }
    options.build(schema).map_err(|e| e.to_string())
}

/// Whether a schema uses a keyword that draft 7 does not have.
fn uses_newer_keywords(v: &serde_json::Value) -> bool {
    const NEWER: &[&str] = &[
        "$defs",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$recursiveRef",
        "$recursiveAnchor",
        "$vocabulary",
        "prefixItems",
        "unevaluatedProperties",
        "unevaluatedItems",
        "dependentRequired",
        "dependentSchemas",
        "minContains",
        "maxContains",
    ];
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .any(|(k, v)| NEWER.contains(&k.as_str()) || uses_newer_keywords(v)),
        serde_json::Value::Array(a) => a.iter().any(uses_newer_keywords),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_without_compiling_compiles_nothing_and_says_it_needed_to() {
        let schema = serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let (r, needed) = without_compiling(|| compile_schema(&schema).map(|_| ()));
        assert!(needed);
        assert!(r.unwrap_err().starts_with("not compiled"));
        let (r, needed) = without_compiling(|| 7);
        assert_eq!((r, needed), (7, false));
        // a nested pass that needed one marks the outer pass too
        let ((_, inner), outer) =
            without_compiling(|| without_compiling(|| compile_schema(&schema).is_ok()));
        assert!(inner && outer);
        // and afterwards this thread compiles again
        assert!(compile_schema(&schema).is_ok());
    }
}
