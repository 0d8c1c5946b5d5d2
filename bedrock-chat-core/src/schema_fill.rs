//! A JSON value generated to validate against a JSON schema: what the offline model answers
//! for structured output, and what `FakeBedrock` (feature `testkit`) puts in a forced tool
//! call. One function for both, so the two never disagree about a schema.
//!
//! It covers what structured-output helpers generate (schemars, pydantic, zod): `type`
//! (one or a list), `properties` and `required`, `items`/`prefixItems` with `minItems` and
//! `maxItems`, `enum`, `const`, `default`, `examples`, local `$ref`s (`#/$defs/...`),
//! `allOf` (merged), `anyOf`/`oneOf` (the first branch that is not `null`), numeric bounds
//! and `multipleOf`, string `minLength`/`maxLength`/`format`. `pattern`, `not` and
//! conditionals are not satisfied. Strings read as text: they are made from the property's
//! name and the seed (the last user message), so a persona's `name` is a name and its
//! `system_prompt` a prompt.

use serde_json::{json, Map, Value};

/// Below this nesting depth (objects and arrays) optional properties are filled and arrays
/// get an item; deeper, only what the schema requires, so recursive schemas (a tree of
/// nodes) end.
const OPTIONAL_DEPTH: usize = 5;
/// Past this depth a required recursion cannot end; give up with `null`.
const MAX_DEPTH: usize = 32;
/// The most `$ref`s and combinators followed without nesting (a cycle of `$ref`s).
const MAX_HOPS: usize = 16;
/// How much of the seed strings quote.
const SEED_CHARS: usize = 80;

/// The input a model would give a tool with input `schema`, as [`fill`] makes it, but with
/// only the required top-level properties: an optional argument left out, as models do
/// when the question does not call for it.
pub(crate) fn fill_tool_input(schema: &Value, name: &str, seed: &str) -> Value {
    let mut input = fill(schema, name, seed);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Value::Object(properties) = &mut input {
        properties.retain(|key, _| required.contains(&key.as_str()));
    }
    input
}

/// A value that validates against `schema` (the supported keywords: see the module docs).
/// `name` names the root (the tool or schema name); `seed` is the text strings are made
/// from.
pub(crate) fn fill(schema: &Value, name: &str, seed: &str) -> Value {
    let seed: String = seed
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(SEED_CHARS)
        .collect();
    Filler { root: schema, seed }.value(schema, name, At::default())
}

/// Where a value is generated.
#[derive(Clone, Copy, Debug, Default)]
struct At {
    /// Objects and arrays around it.
    depth: usize,
    /// `$ref`s and combinators followed since the last nesting.
    hops: usize,
    /// Its position in an array, so that items differ.
    index: usize,
}

impl At {
    /// One level deeper, as item `index`.
    fn nested(self, index: usize) -> Self {
        Self {
            depth: self.depth + 1,
            hops: 0,
            index,
        }
    }

    /// The same place, through one more `$ref` or combinator.
    fn hop(self) -> Self {
        Self {
            hops: self.hops + 1,
            ..self
        }
    }
}

struct Filler<'a> {
    root: &'a Value,
    seed: String,
}

impl Filler<'_> {
    /// A value for `schema`.
    fn value(&self, schema: &Value, name: &str, at: At) -> Value {
        if at.depth > MAX_DEPTH || at.hops > MAX_HOPS {
            return Value::Null;
        }
        let (depth, index) = (at.depth, at.index);
        let schema = match schema {
            Value::Object(map) => map,
            Value::Bool(false) => return Value::Null,
            _ => return Value::String(self.text(name, index)),
        };
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            if let Some(resolved) = self.resolve(target) {
                let merged = merge(without(schema, &["$ref"]), resolved, self);
                return self.value(&Value::Object(merged), name, at.hop());
            }
        }
        if let Some(c) = schema.get("const") {
            return c.clone();
        }
        if let Some(values) = schema
            .get("enum")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        {
            return values[index % values.len()].clone();
        }
        if let Some(default) = schema.get("default").filter(|_| index == 0) {
            return default.clone();
        }
        if let Some(examples) = schema
            .get("examples")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        {
            return examples[index % examples.len()].clone();
        }
        if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
            let merged = branches
                .iter()
                .fold(without(schema, &["allOf"]), |acc, b| merge(acc, b, self));
            return self.value(&Value::Object(merged), name, at.hop());
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                let deep = depth >= OPTIONAL_DEPTH;
                // Past the optional depth a `null` branch ends a recursion; before it, the
                // first real branch says more.
                let branch = branches
                    .iter()
                    .find(|b| is_null(b) == deep)
                    .or_else(|| branches.first());
                if let Some(branch) = branch {
                    let merged = merge(without(schema, &[key]), branch, self);
                    return self.value(&Value::Object(merged), name, at.hop());
                }
            }
        }
        match type_of(schema, depth >= OPTIONAL_DEPTH) {
            "object" => self.object(schema, at),
            "array" => self.array(schema, name, at),
            "integer" => number(schema, true, index),
            "number" => number(schema, false, index),
            "boolean" => Value::Bool(index % 2 == 1),
            "null" => Value::Null,
            _ => Value::String(self.string(schema, name, index)),
        }
    }

    fn object(&self, schema: &Map<String, Value>, at: At) -> Value {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let extra = schema.get("additionalProperties").filter(|s| s.is_object());
        let mut out = Map::new();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (key, sub) in props {
                if at.depth < OPTIONAL_DEPTH || required.contains(&key.as_str()) {
                    out.insert(key.clone(), self.value(sub, key, at.nested(0)));
                }
            }
        }
        for key in required {
            if !out.contains_key(key) {
                let value = match extra {
                    Some(sub) => self.value(sub, key, at.nested(0)),
                    None => Value::String(self.text(key, 0)),
                };
                out.insert(key.to_owned(), value);
            }
        }
        let min = count(schema, "minProperties").unwrap_or(0);
        if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
            let mut i = 1;
            while out.len() < min {
                let key = format!("property_{i}");
                let value = match extra {
                    Some(sub) => self.value(sub, &key, at.nested(0)),
                    None => Value::String(self.text(&key, 0)),
                };
                out.entry(key).or_insert(value);
                i += 1;
            }
        }
        Value::Object(out)
    }

    fn array(&self, schema: &Map<String, Value>, name: &str, at: At) -> Value {
        let item_name = singular(name);
        // A tuple: `prefixItems` (2020-12) or an array of `items` (drafts 4 to 2019-09).
        let tuple = schema
            .get("prefixItems")
            .or_else(|| schema.get("items").filter(|i| i.is_array()))
            .and_then(Value::as_array);
        let rest = match tuple {
            Some(_) if schema.contains_key("prefixItems") => schema.get("items"),
            Some(_) => schema.get("additionalItems"),
            None => schema.get("items").or_else(|| schema.get("contains")),
        };
        let wanted = usize::from(at.depth < OPTIONAL_DEPTH);
        let tuple_len = tuple.map_or(0, Vec::len);
        let mut len = count(schema, "minItems")
            .unwrap_or(0)
            .max(wanted)
            .max(tuple_len);
        if rest == Some(&Value::Bool(false)) {
            len = len.min(tuple_len);
        }
        if let Some(max) = count(schema, "maxItems") {
            len = len.min(max);
        }
        let empty = json!({});
        let items = (0..len)
            .map(|i| {
                let item = tuple.and_then(|t| t.get(i)).or(rest).unwrap_or(&empty);
                self.value(item, &item_name, at.nested(i))
            })
            .collect();
        Value::Array(items)
    }

    fn string(&self, schema: &Map<String, Value>, name: &str, index: usize) -> String {
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        if let Some(formatted) = formatted(format, index) {
            return formatted;
        }
        let mut text = self.text(name, index);
        let min = count(schema, "minLength").unwrap_or(0);
        while text.chars().count() < min {
            text.push_str(if text.is_empty() { "text" } else { " more" });
        }
        if let Some(max) = count(schema, "maxLength") {
            text = text.chars().take(max.max(min)).collect();
        }
        text
    }

    /// Text for a property called `name`, made from the seed.
    fn text(&self, name: &str, index: usize) -> String {
        let key = name.to_ascii_lowercase().replace(['-', ' '], "_");
        let label = humanize(name);
        let seed = if self.seed.is_empty() {
            label.to_lowercase()
        } else {
            self.seed.clone()
        };
        let has = |words: &[&str]| words.iter().any(|w| key.contains(w));
        let text = if has(&["prompt", "instruction"]) {
            format!("You are {seed}. Stay in character and answer the user helpfully.")
        } else if key == "id" || key.ends_with("_id") {
            slug(&seed)
        } else if has(&["url", "uri", "link", "website"]) {
            format!("https://example.com/{}", slug(&seed))
        } else if has(&["name", "title", "label", "headline"]) {
            title(&seed)
        } else if has(&[
            "description",
            "summary",
            "bio",
            "about",
            "detail",
            "content",
            "text",
            "body",
            "message",
            "answer",
            "reason",
        ]) {
            sentence(&seed)
        } else {
            format!("{label} for {seed}")
        };
        match index {
            0 => text,
            i => format!("{text} ({})", i + 1),
        }
    }

    /// The schema a local `$ref` (`#`, `#/$defs/Name`, `#/definitions/Name`) points at.
    fn resolve(&self, target: &str) -> Option<&Value> {
        let pointer = target.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }
}

/// `schema` without `keys`.
fn without(schema: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    let mut out = schema.clone();
    for key in keys {
        out.remove(*key);
    }
    out
}

/// `base` with `other`'s keywords added: `properties` and `required` are united, any other
/// keyword `base` already has is kept.
fn merge(mut base: Map<String, Value>, other: &Value, filler: &Filler<'_>) -> Map<String, Value> {
    let mut other = match other {
        Value::Object(map) => map.clone(),
        _ => return base,
    };
    // A `$ref` inside a branch (`allOf: [{"$ref": ...}]`) is followed once here.
    if let Some(resolved) = other
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|t| filler.resolve(t))
        .and_then(Value::as_object)
    {
        let own = without(&other, &["$ref"]);
        other = resolved.clone();
        other.extend(own);
    }
    for (key, value) in other {
        match (key.as_str(), base.get_mut(&key), value) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (k, v) in theirs {
                    mine.entry(k).or_insert(v);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for v in theirs {
                    if !mine.contains(&v) {
                        mine.push(v);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                base.insert(key, value);
            }
        }
    }
    base
}

fn is_null(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The type to generate: the declared one (the first that is not `null`, or `null` when
/// `prefer_null` and it is allowed), else the one the keywords imply.
fn type_of(schema: &Map<String, Value>, prefer_null: bool) -> &str {
    match schema.get("type") {
        Some(Value::String(t)) => t,
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            if prefer_null && names.contains(&"null") {
                return "null";
            }
            names
                .iter()
                .find(|t| **t != "null")
                .or_else(|| names.first())
                .copied()
                .unwrap_or("null")
        }
        _ => {
            let has = |keys: &[&str]| keys.iter().any(|k| schema.contains_key(*k));
            if has(&[
                "properties",
                "required",
                "additionalProperties",
                "minProperties",
            ]) {
                "object"
            } else if has(&["items", "prefixItems", "minItems", "maxItems", "contains"]) {
                "array"
            } else if has(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) {
                "number"
            } else {
                "string"
            }
        }
    }
}

/// A non-negative integer keyword (`minItems`, `maxLength`, ...).
fn count(schema: &Map<String, Value>, key: &str) -> Option<usize> {
    schema
        .get(key)
        .and_then(Value::as_u64)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A number within the bounds (inclusive or exclusive, in either draft's spelling) and a
/// multiple of `multipleOf`; `index` when that fits, so array items differ.
fn number(schema: &Map<String, Value>, integer: bool, index: usize) -> Value {
    let get = |key: &str| schema.get(key).and_then(Value::as_f64);
    let flag = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
    // Draft 4 writes an exclusive bound as `minimum` plus `exclusiveMinimum: true`.
    let (low, low_open) = match (get("exclusiveMinimum"), get("minimum")) {
        (Some(e), Some(m)) if m > e => (Some(m), false),
        (Some(e), _) => (Some(e), true),
        (None, m) => (m, flag("exclusiveMinimum")),
    };
    let (high, high_open) = match (get("exclusiveMaximum"), get("maximum")) {
        (Some(e), Some(m)) if m < e => (Some(m), false),
        (Some(e), _) => (Some(e), true),
        (None, m) => (m, flag("exclusiveMaximum")),
    };
    let step = get("multipleOf").filter(|m| *m > 0.0);
    let nudge = |bound: f64, up: bool| {
        let delta = step.unwrap_or(if integer { 1.0 } else { 0.5 });
        if up {
            bound + delta
        } else {
            bound - delta
        }
    };
    let mut x = index as f64;
    if let Some(low) = low {
        if x < low || (low_open && x <= low) {
            x = if low_open { nudge(low, true) } else { low };
        }
    }
    if let Some(high) = high {
        if x > high || (high_open && x >= high) {
            x = if high_open { nudge(high, false) } else { high };
        }
        if let Some(low) = low {
            if !(x > low || (!low_open && x >= low)) {
                // Only a point between two close bounds is left.
                x = (low + high) / 2.0;
            }
        }
    }
    if integer {
        x = if low.is_some() { x.ceil() } else { x.round() };
    }
    if let Some(step) = step {
        let up = (x / step).ceil() * step;
        x = match high {
            Some(high) if up > high || (high_open && up >= high) => (x / step).floor() * step,
            _ => up,
        };
    }
    if integer || x.fract() == 0.0 {
        // A whole number is written without a fraction, valid for `number` too.
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// A value in a string `format`, when it is one we know.
fn formatted(format: &str, index: usize) -> Option<String> {
    let n = index + 1;
    Some(match format {
        "date-time" => format!("2024-01-{n:02}T12:00:00Z"),
        "date" => format!("2024-01-{n:02}"),
        "time" => "12:00:00Z".to_owned(),
        "duration" => format!("PT{n}M"),
        "email" | "idn-email" => format!("user{n}@example.com"),
        "uri" | "url" | "iri" | "uri-reference" | "iri-reference" => {
            format!("https://example.com/{n}")
        }
        "hostname" | "idn-hostname" => format!("host{n}.example.com"),
        "ipv4" => format!("192.0.2.{}", n % 255),
        "ipv6" => format!("2001:db8::{n:x}"),
        "uuid" => format!("00000000-0000-4000-8000-{n:012x}"),
        _ => return None,
    })
}

/// `tags` → `tag`, for the items of an array property.
fn singular(name: &str) -> String {
    match name.strip_suffix('s') {
        Some(stem) if stem.len() > 2 && !stem.ends_with('s') => stem.to_owned(),
        _ => name.to_owned(),
    }
}

/// `system_prompt` / `systemPrompt` → `System prompt`.
fn humanize(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c == '_' || c == '-' {
            out.push(' ');
        } else if c.is_uppercase() && i > 0 {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else if i == 0 {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
    }
    if out.trim().is_empty() {
        "Output".to_owned()
    } else {
        out.trim().to_owned()
    }
}

/// The seed as a sentence: capitalized, ending with a full stop.
fn sentence(seed: &str) -> String {
    let mut chars = seed.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A short title from the seed: its first words up to a joining word, capitalized
/// (`a cheerful pirate who loves maps` → `Cheerful Pirate`).
fn title(seed: &str) -> String {
    const JOINING: &[&str] = &[
        "a", "an", "the", "who", "that", "which", "with", "and", "or", "of", "for", "to", "in",
        "on", "is", "are", "from", "about",
    ];
    let words: Vec<String> = seed
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .skip_while(|w| JOINING.contains(&w.to_lowercase().as_str()))
        .take_while(|w| !JOINING.contains(&w.to_lowercase().as_str()))
        .take(3)
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        })
        .collect();
    if words.is_empty() {
        sentence(seed).trim_end_matches('.').to_owned()
    } else {
        words.join(" ")
    }
}

/// Lower-case words joined by `-` (`A cheerful pirate!` → `a-cheerful-pirate`).
fn slug(seed: &str) -> String {
    let words: Vec<String> = seed
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(4)
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        "item".to_owned()
    } else {
        words.join("-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "a cheerful pirate who loves maps";

    #[test]
    fn strings_read_as_text_made_from_the_seed() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "system_prompt": {"type": "string"},
                "tone": {"type": "string"}
            }
        });
        let value = fill(&schema, "persona", SEED);
        assert_eq!(value["name"], "Cheerful Pirate");
        assert_eq!(value["description"], "A cheerful pirate who loves maps.");
        assert_eq!(
            value["system_prompt"],
            "You are a cheerful pirate who loves maps. Stay in character and answer the user \
             helpfully."
        );
        assert_eq!(value["tone"], "Tone for a cheerful pirate who loves maps");
    }

    #[test]
    fn refs_all_of_and_nullable_branches_are_followed() {
        let schema = json!({
            "type": "object",
            "required": ["owner", "pet"],
            "properties": {
                "owner": {"$ref": "#/$defs/Person"},
                "pet": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/Pet"}]},
                "both": {"allOf": [{"$ref": "#/$defs/Person"}, {"properties": {"x": {"type": "boolean"}}}]}
            },
            "$defs": {"Person": {"type": "object", "properties": {"age": {"type": "integer", "minimum": 18}}, "required": ["age"]}},
            "definitions": {"Pet": {"type": "object", "properties": {"kind": {"enum": ["cat", "dog"]}}}}
        });
        let value = fill(&schema, "x", SEED);
        assert_eq!(value["owner"], json!({"age": 18}));
        assert_eq!(value["pet"], json!({"kind": "cat"}));
        assert_eq!(value["both"], json!({"age": 18, "x": false}));
    }

    #[test]
    fn numbers_respect_bounds_and_multiples() {
        let n = |s: Value, integer| number(s.as_object().unwrap(), integer, 0);
        assert_eq!(n(json!({"minimum": 5}), true), json!(5));
        assert_eq!(n(json!({"exclusiveMinimum": 5}), true), json!(6));
        assert_eq!(
            n(json!({"minimum": 5, "exclusiveMinimum": true}), true),
            json!(6)
        );
        assert_eq!(n(json!({"maximum": -3}), true), json!(-3));
        assert_eq!(n(json!({"minimum": 7, "multipleOf": 5}), true), json!(10));
        assert_eq!(
            n(json!({"exclusiveMinimum": 0, "exclusiveMaximum": 1}), false),
            json!(0.5)
        );
        assert_eq!(n(json!({"minimum": 0.25}), false), json!(0.25));
    }

    #[test]
    fn arrays_honour_min_items_tuples_and_unique_items() {
        let schema = json!({
            "type": "array", "minItems": 3, "uniqueItems": true,
            "items": {"type": "string", "format": "email"}
        });
        let value = fill(&schema, "emails", SEED);
        assert_eq!(
            value,
            json!([
                "user1@example.com",
                "user2@example.com",
                "user3@example.com"
            ])
        );
        let tuple = json!({"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}], "items": false});
        assert_eq!(fill(&tuple, "pair", SEED), json!([0, "x"]));
        let empty = json!({"type": "array", "maxItems": 0, "items": {"type": "string"}});
        assert_eq!(fill(&empty, "none", SEED), json!([]));
    }

    #[test]
    fn a_recursive_schema_ends() {
        let schema = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {
                "type": "object",
                "required": ["label", "children"],
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}
                }
            }}
        });
        let value = fill(&schema, "tree", SEED);
        assert!(value["children"].is_array());
        assert!(value.to_string().len() < 10_000);
    }

    #[test]
    fn defaults_examples_and_lengths_are_used() {
        let schema = json!({
            "type": "object",
            "properties": {
                "greeting": {"type": "string", "default": "Ahoy"},
                "motto": {"type": "string", "examples": ["X marks the spot"]},
                "code": {"type": "string", "maxLength": 4},
                "long": {"type": "string", "minLength": 60},
                "flag": {"type": ["null", "boolean"]}
            }
        });
        let value = fill(&schema, "x", "");
        assert_eq!(value["greeting"], "Ahoy");
        assert_eq!(value["motto"], "X marks the spot");
        assert_eq!(value["code"].as_str().unwrap().chars().count(), 4);
        assert!(value["long"].as_str().unwrap().chars().count() >= 60);
        assert_eq!(value["flag"], false);
    }
}
