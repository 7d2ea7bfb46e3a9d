//! Message templates with `{{placeholders}}`: a webhook's body, a rule's message, any text built
//! from an alert. Pure: the values come from whoever renders it. A webhook body that looks like
//! JSON (its text starts with `{` or `[`) is rendered as JSON: every value is escaped for a JSON
//! string, and the template must render to valid JSON, which is checked when it is saved, not when
//! the first alert goes out. A rule's message is plain text ([`Template::text`]).

use std::collections::BTreeMap;

/// Every placeholder a template may use.
pub const PLACEHOLDERS: [&str; 13] = [
    "symbol",
    "name",
    "instrument",
    "price",
    "level",
    "condition",
    "percent",
    "change_percent",
    "time",
    "note",
    "rule_id",
    "alert_id",
    "event_id",
];

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder `{{{{{0}}}}}`; known: {list}", list = PLACEHOLDERS.join(", "))]
    UnknownPlaceholder(String),
    #[error("a `{{{{` at byte {0} is never closed with `}}}}`")]
    Unclosed(usize),
    #[error("the template looks like JSON but renders to invalid JSON: {0}")]
    InvalidJson(String),
    #[error("the template is longer than {MAX_TEMPLATE_BYTES} bytes")]
    TooLong,
    #[error("the template is empty")]
    Empty,
}

/// The values placeholders stand for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateValues(BTreeMap<&'static str, String>);

impl TemplateValues {
    pub fn set(&mut self, placeholder: &'static str, value: impl Into<String>) -> &mut Self {
        self.0.insert(placeholder, value.into());
        self
    }

    fn get(&self, placeholder: &str) -> &str {
        self.0.get(placeholder).map(String::as_str).unwrap_or("")
    }

    /// Plausible values for every placeholder, to check a template when it is saved.
    pub fn sample() -> Self {
        let mut values = Self::default();
        for (placeholder, value) in [
            ("symbol", "005930"),
            ("name", "Samsung \"Electronics\""),
            ("instrument", "KRX:005930"),
            ("price", "71900"),
            ("level", "71900"),
            ("condition", "ABOVE"),
            ("percent", "2.5"),
            ("change_percent", "-3.12"),
            ("time", "2026-12-02T10:26:16+09:00"),
            ("note", "take profit\nnow"),
            ("rule_id", "7"),
            ("alert_id", "42"),
            ("event_id", "019ab2c1-4f7e-7c3a-9a51-1d2f3e4a5b6c"),
        ] {
            values.set(placeholder, value);
        }
        values
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Placeholder(&'static str),
}

/// A parsed, checked template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
    json: bool,
}

impl Template {
    /// A template, rendered as JSON when its text looks like JSON.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let pieces = Self::pieces(source)?;
        // JSON when its literal text opens with a brace or bracket (not a placeholder's braces).
        let json = matches!(pieces.first(), Some(Piece::Text(text))
            if text.trim_start().starts_with(['{', '[']));
        let template = Template { pieces, json };
        if template.json {
            serde_json::from_str::<serde_json::Value>(&template.render(&TemplateValues::sample()))
                .map_err(|e| TemplateError::InvalidJson(e.to_string()))?;
        }
        Ok(template)
    }

    /// A template of plain text, whatever it starts with (`[BTC] {{price}}` is not JSON).
    pub fn text(source: &str) -> Result<Self, TemplateError> {
        Ok(Template {
            pieces: Self::pieces(source)?,
            json: false,
        })
    }

    fn pieces(source: &str) -> Result<Vec<Piece>, TemplateError> {
        if source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooLong);
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            let offset = source.len() - rest.len() + open;
            let close = rest[open..]
                .find("}}")
                .ok_or(TemplateError::Unclosed(offset))?;
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let name = rest[open + 2..open + close].trim();
            let placeholder = PLACEHOLDERS
                .into_iter()
                .find(|known| *known == name)
                .ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_string()))?;
            pieces.push(Piece::Placeholder(placeholder));
            rest = &rest[open + close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(pieces)
    }

    /// True when the template renders JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn content_type(&self) -> &'static str {
        if self.json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        }
    }

    pub fn render(&self, values: &TemplateValues) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Placeholder(name) if self.json => {
                    let quoted = serde_json::Value::from(values.get(name)).to_string();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                }
                Piece::Placeholder(name) => out.push_str(values.get(name)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_with_or_without_spaces() {
        let template = Template::parse("{{symbol}} reached {{ price }} ({{condition}})").unwrap();
        assert!(!template.is_json());
        let mut values = TemplateValues::default();
        values
            .set("symbol", "KRW-BTC")
            .set("price", "161000000")
            .set("condition", "ABOVE");
        assert_eq!(
            template.render(&values),
            "KRW-BTC reached 161000000 (ABOVE)"
        );
    }

    #[test]
    fn json_templates_escape_values_and_must_stay_json() {
        let template =
            Template::parse(r#"{"text": "{{name}}: {{note}}", "price": {{price}}}"#).unwrap();
        let rendered = template.render(&TemplateValues::sample());
        let value: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(value["text"], "Samsung \"Electronics\": take profit\nnow");
        assert_eq!(value["price"], 71900);
        assert_eq!(template.content_type(), "application/json");

        assert!(matches!(
            Template::parse(r#"{"note": {{note}}}"#),
            Err(TemplateError::InvalidJson(_))
        ));
    }

    #[test]
    fn a_text_template_is_never_json() {
        let template = Template::text("[{{symbol}}] {{change_percent}}%").unwrap();
        assert!(!template.is_json());
        assert_eq!(
            template.render(&TemplateValues::sample()),
            "[005930] -3.12%"
        );
        assert!(Template::parse("[{{symbol}}] {{change_percent}}%").is_err());
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(
            Template::parse("{{symbol}} {{volume}}")
                .unwrap_err()
                .to_string(),
            format!(
                "unknown placeholder `{{{{volume}}}}`; known: {}",
                PLACEHOLDERS.join(", ")
            )
        );
        assert_eq!(
            Template::parse("price {{price").unwrap_err(),
            TemplateError::Unclosed(6)
        );
        assert_eq!(Template::parse("  ").unwrap_err(), TemplateError::Empty);
        assert_eq!(
            Template::parse(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).unwrap_err(),
            TemplateError::TooLong
        );
    }
}
