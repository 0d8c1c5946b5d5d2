//! Conversion between `serde_json::Value` and the SDK's `Document`, the type Bedrock uses for
//! free-form JSON (tool input schemas and tool-use inputs).

use std::collections::HashMap;

use aws_smithy_types::{Document, Number};
use serde_json::Value;

/// `value` as a `Document`. Lossless: every JSON value has a `Document` form.
pub(crate) fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(to_number(n)),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_number(n: &serde_json::Number) -> Number {
    if let Some(u) = n.as_u64() {
        Number::PosInt(u)
    } else if let Some(i) = n.as_i64() {
        // `as_u64` failed, so this is negative, as `NegInt` requires.
        Number::NegInt(i)
    } else {
        Number::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// `document` as JSON. Non-finite floats (which JSON cannot hold) become `null`.
pub(crate) fn to_json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<serde_json::Map<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_survives_a_round_trip_through_a_document() {
        let value = json!({
            "name": "Link",
            "age": 17,
            "debt": -3,
            "ratio": 0.25,
            "tags": ["hero", null, true],
            "nested": {"empty": {}}
        });
        assert_eq!(to_json(&to_document(&value)), value);
    }

    #[test]
    fn a_non_finite_float_becomes_null() {
        assert_eq!(
            to_json(&Document::Number(Number::Float(f64::NAN))),
            Value::Null
        );
    }
}
