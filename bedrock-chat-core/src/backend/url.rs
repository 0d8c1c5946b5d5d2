//! The parts of a backend URL that the store's and the limiter's `from_url` parse alike
//! (for backend authors; see the [module](super) notes): the scheme, `memory`, a server's
//! host, `redis://…?prefix=`, `dynamodb://TABLE?endpoint=…&region=…`, query parameters and
//! their percent-encoding.
//!
//! Each function answers [`InvalidUrl`] naming the [`UrlPart`] that is wrong; each crate
//! wraps it in its own error (`StoreUrlError::Invalid`, `LimiterUrlError::Invalid`), whose
//! message says which kind of URL it was.
//!
//! ```
//! use bedrock_chat_core::backend::url::{parse_dynamodb, split_scheme, UrlPart};
//!
//! let (scheme, rest) = split_scheme(" DynamoDB://chats?region=eu-west-1 ")?;
//! assert_eq!(scheme, "dynamodb");
//! let url = parse_dynamodb(rest)?;
//! assert_eq!((url.table.as_str(), url.region.as_deref()), ("chats", Some("eu-west-1")));
//!
//! let bad = parse_dynamodb("//chats?regoin=eu-west-1").unwrap_err();
//! assert_eq!(bad.part, UrlPart::Parameter("regoin".into()));
//! # Ok::<(), bedrock_chat_core::backend::url::InvalidUrl>(())
//! ```

use std::fmt;

/// Which part of a backend URL is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlPart {
    /// The scheme (`postgres`, `redis`, ...), or its absence.
    Scheme,
    /// What follows the scheme: a SQLite URL's file path, or anything after `memory`.
    Path,
    /// A server URL's host (what follows `://`).
    Host,
    /// A DynamoDB URL's table name.
    Table,
    /// The query string as a whole.
    Query,
    /// One query parameter, by name.
    Parameter(String),
}

impl fmt::Display for UrlPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scheme => f.write_str("scheme"),
            Self::Path => f.write_str("path"),
            Self::Host => f.write_str("host"),
            Self::Table => f.write_str("table name"),
            Self::Query => f.write_str("query"),
            Self::Parameter(name) => write!(f, "query parameter `{name}`"),
        }
    }
}

/// One part of a backend URL is malformed: which, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad {part} in the URL: {reason}")]
pub struct InvalidUrl {
    /// Which part.
    pub part: UrlPart,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidUrl {
    /// `part` is wrong because of `reason`.
    pub fn new(part: UrlPart, reason: impl Into<String>) -> Self {
        Self {
            part,
            reason: reason.into(),
        }
    }
}

/// The scheme (lower-cased) and what follows its `:`, of `url` trimmed.
///
/// # Errors
/// [`UrlPart::Scheme`] when the URL is empty.
pub fn split_scheme(url: &str) -> Result<(String, &str), InvalidUrl> {
    let url = url.trim();
    if url.is_empty() {
        return Err(InvalidUrl::new(UrlPart::Scheme, "the URL is empty"));
    }
    let (scheme, rest) = url.split_once(':').unwrap_or((url, ""));
    Ok((scheme.to_ascii_lowercase(), rest))
}

/// Checks what follows `memory:`: nothing, or `//`.
///
/// # Errors
/// [`UrlPart::Path`] for anything else.
pub fn check_memory(rest: &str) -> Result<(), InvalidUrl> {
    if rest.is_empty() || rest == "//" {
        Ok(())
    } else {
        Err(InvalidUrl::new(
            UrlPart::Path,
            "`memory` takes nothing after it",
        ))
    }
}

/// What follows `//` up to the path or query: the authority of a server URL (empty when
/// the URL names no host).
///
/// # Errors
/// [`UrlPart::Scheme`] when `rest` does not start with `//`.
pub fn server_authority(rest: &str) -> Result<&str, InvalidUrl> {
    let Some(after) = rest.strip_prefix("//") else {
        return Err(InvalidUrl::new(
            UrlPart::Scheme,
            "a server URL needs `://` after the scheme",
        ));
    };
    Ok(after.split(['/', '?']).next().unwrap_or_default())
}

/// A `redis://` or `rediss://` URL with our `prefix` parameter taken out.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisUrl {
    /// The URL without `prefix`, as the redis crate takes it (its own parameters, such as
    /// `protocol` or `insecure`, kept).
    pub url: String,
    /// The `prefix` parameter, decoded.
    pub prefix: Option<String>,
}

/// Credentials may sit in the URL: print only the prefix.
impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Parses what follows `scheme:` (`redis` or `rediss`) of a Redis URL.
///
/// ```
/// use bedrock_chat_core::backend::url::parse_redis;
///
/// let url = parse_redis("rediss", "//:pw@cache:6380/?prefix=chat%3Aprod&protocol=resp3")?;
/// assert_eq!(url.url, "rediss://:pw@cache:6380/?protocol=resp3");
/// assert_eq!(url.prefix.as_deref(), Some("chat:prod"));
/// # Ok::<(), bedrock_chat_core::backend::url::InvalidUrl>(())
/// ```
///
/// # Errors
/// [`UrlPart::Scheme`] without `//`, [`UrlPart::Host`] without a host,
/// [`UrlPart::Parameter`] for an empty, repeated or badly encoded `prefix`.
pub fn parse_redis(scheme: &str, rest: &str) -> Result<RedisUrl, InvalidUrl> {
    if server_authority(rest)?.is_empty() {
        return Err(InvalidUrl::new(
            UrlPart::Host,
            "give the server: redis://HOST:PORT/DB",
        ));
    }
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut prefix = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "prefix" {
            let value = query_parameter(&prefix, name, raw)?;
            if value.is_empty() {
                return Err(InvalidUrl::new(
                    UrlPart::Parameter(name.into()),
                    "must not be empty",
                ));
            }
            prefix = Some(value);
        } else {
            // The redis crate's own parameters (`protocol`, `insecure`, ...), as given.
            kept.push(pair);
        }
    }
    let mut url = format!("{scheme}:{base}");
    if !kept.is_empty() {
        url.push('?');
        url.push_str(&kept.join("&"));
    }
    Ok(RedisUrl { url, prefix })
}

/// A `dynamodb://TABLE?endpoint=URL&region=REGION` URL's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DynamoDbUrl {
    /// The table's name, checked against DynamoDB's rule.
    pub table: String,
    /// `endpoint=`: an `http://` or `https://` URL with a host.
    pub endpoint: Option<String>,
    /// `region=`: lower-case letters, digits and `-`.
    pub region: Option<String>,
}

/// Parses what follows `dynamodb:`: `//TABLE?endpoint=URL&region=REGION`, both
/// parameters optional.
///
/// # Errors
/// [`UrlPart::Scheme`] without `//`; [`UrlPart::Table`] for a table name DynamoDB would
/// refuse; [`UrlPart::Parameter`] for an unknown, repeated, badly encoded or malformed
/// parameter.
pub fn parse_dynamodb(rest: &str) -> Result<DynamoDbUrl, InvalidUrl> {
    let Some(after) = rest.strip_prefix("//") else {
        return Err(InvalidUrl::new(UrlPart::Scheme, "write dynamodb://TABLE"));
    };
    let (table, query) = after.split_once('?').unwrap_or((after, ""));
    check_table_name(table)?;
    let (mut endpoint, mut region) = (None, None);
    for (name, raw) in query_pairs(query) {
        match name {
            "endpoint" => {
                let value = query_parameter(&endpoint, name, raw)?;
                let host = value
                    .strip_prefix("http://")
                    .or_else(|| value.strip_prefix("https://"))
                    .ok_or_else(|| {
                        InvalidUrl::new(
                            UrlPart::Parameter(name.into()),
                            format!("`{value}` is not an http:// or https:// URL"),
                        )
                    })?;
                if host.split(['/', '?']).next().unwrap_or_default().is_empty() {
                    return Err(InvalidUrl::new(
                        UrlPart::Parameter(name.into()),
                        format!("`{value}` has no host"),
                    ));
                }
                endpoint = Some(value);
            }
            "region" => {
                let value = query_parameter(&region, name, raw)?;
                let valid = !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return Err(InvalidUrl::new(
                        UrlPart::Parameter(name.into()),
                        format!("`{value}` is not an AWS region (like eu-west-1)"),
                    ));
                }
                region = Some(value);
            }
            other => {
                return Err(InvalidUrl::new(
                    UrlPart::Parameter(other.into()),
                    "unknown parameter; expected endpoint or region",
                ))
            }
        }
    }
    Ok(DynamoDbUrl {
        table: table.to_owned(),
        endpoint,
        region,
    })
}

/// Checks a DynamoDB table name against DynamoDB's rule: 3 to 255 of
/// `a-z A-Z 0-9 _ - .`.
///
/// # Errors
/// [`UrlPart::Table`] saying what is wrong.
pub fn check_table_name(table: &str) -> Result<(), InvalidUrl> {
    if table.is_empty() {
        return Err(InvalidUrl::new(
            UrlPart::Table,
            "missing: write dynamodb://TABLE",
        ));
    }
    if !(3..=255).contains(&table.len()) {
        return Err(InvalidUrl::new(
            UrlPart::Table,
            format!("`{table}` must be 3 to 255 characters long"),
        ));
    }
    if let Some(c) = table
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(InvalidUrl::new(
            UrlPart::Table,
            format!("`{table}` contains `{c}`; allowed are letters, digits, `_`, `-` and `.`"),
        ));
    }
    Ok(())
}

/// `name=value` pairs of a query string (empty pairs skipped), values still
/// percent-encoded; a pair without `=` has an empty value.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Decodes the value of parameter `name`, which must not have been seen yet (`seen` is
/// its value so far).
///
/// # Errors
/// [`UrlPart::Parameter`] when it was given before or its percent-encoding is bad.
pub fn query_parameter(seen: &Option<String>, name: &str, raw: &str) -> Result<String, InvalidUrl> {
    if seen.is_some() {
        return Err(InvalidUrl::new(
            UrlPart::Parameter(name.into()),
            "given more than once",
        ));
    }
    percent_decode(raw).ok_or_else(|| {
        InvalidUrl::new(
            UrlPart::Parameter(name.into()),
            "bad percent-encoding (`%` must be followed by two hex digits, giving UTF-8)",
        )
    })
}

/// `%XX`-decodes `raw`; `None` when an escape is malformed or the bytes are not UTF-8.
pub fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part<T: fmt::Debug>(result: Result<T, InvalidUrl>) -> UrlPart {
        match result {
            Err(e) => e.part,
            Ok(value) => panic!("expected an error, got {value:?}"),
        }
    }

    fn parameter(name: &str) -> UrlPart {
        UrlPart::Parameter(name.into())
    }

    #[test]
    fn the_scheme_is_trimmed_and_lower_cased() {
        assert_eq!(
            split_scheme(" Redis://cache/ ").unwrap(),
            ("redis".into(), "//cache/")
        );
        assert_eq!(split_scheme("memory").unwrap(), ("memory".into(), ""));
        assert_eq!(part(split_scheme("  ")), UrlPart::Scheme);
    }

    #[test]
    fn memory_takes_nothing_after_it() {
        check_memory("").unwrap();
        check_memory("//").unwrap();
        assert_eq!(part(check_memory("x")), UrlPart::Path);
    }

    #[test]
    fn the_server_authority_ends_at_the_path_or_query() {
        assert_eq!(server_authority("//u:p@h:1/db?x").unwrap(), "u:p@h:1");
        assert_eq!(server_authority("//?x").unwrap(), "");
        assert_eq!(part(server_authority("host")), UrlPart::Scheme);
    }

    #[test]
    fn redis_urls_keep_the_drivers_parameters_and_take_the_prefix() {
        let url = parse_redis("redis", "//cache/2?insecure&prefix=a%3Ab&protocol=resp3").unwrap();
        assert_eq!(url.url, "redis://cache/2?insecure&protocol=resp3");
        assert_eq!(url.prefix.as_deref(), Some("a:b"));
        let plain = parse_redis("redis", "//cache").unwrap();
        assert_eq!((plain.url.as_str(), plain.prefix), ("redis://cache", None));
        assert_eq!(part(parse_redis("redis", "//")), UrlPart::Host);
        assert_eq!(part(parse_redis("redis", "///0")), UrlPart::Host);
        assert_eq!(part(parse_redis("redis", "cache")), UrlPart::Scheme);
        assert_eq!(
            part(parse_redis("redis", "//c/?prefix=")),
            parameter("prefix")
        );
        assert_eq!(
            parse_redis("redis", "//c/?prefix=a&prefix=b").unwrap_err(),
            InvalidUrl::new(parameter("prefix"), "given more than once")
        );
    }

    #[test]
    fn redis_urls_print_no_credentials() {
        let url = parse_redis("redis", "//:hunter2@cache/").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn dynamodb_urls_parse_into_table_endpoint_and_region() {
        assert_eq!(
            parse_dynamodb("//chats?endpoint=https%3A%2F%2Fddb.example&region=eu-west-1").unwrap(),
            DynamoDbUrl {
                table: "chats".into(),
                endpoint: Some("https://ddb.example".into()),
                region: Some("eu-west-1".into()),
            }
        );
        assert_eq!(part(parse_dynamodb("chats")), UrlPart::Scheme);
        assert_eq!(part(parse_dynamodb("//?region=eu-west-1")), UrlPart::Table);
        for query in [
            "endpoint=ddb.local",
            "endpoint=http://",
            "endpoint=http://a&endpoint=http://b",
        ] {
            assert_eq!(
                part(parse_dynamodb(&format!("//chats?{query}"))),
                parameter("endpoint"),
                "{query}"
            );
        }
        assert_eq!(
            part(parse_dynamodb("//chats?region=EU West")),
            parameter("region")
        );
        assert_eq!(
            parse_dynamodb("//chats?table=x").unwrap_err().reason,
            "unknown parameter; expected endpoint or region"
        );
    }

    #[test]
    fn table_names_follow_dynamodbs_rule() {
        check_table_name("a.b_c-1").unwrap();
        check_table_name(&"t".repeat(255)).unwrap();
        for bad in ["", "ab", "a/b", "a b", "a$b"] {
            assert_eq!(part(check_table_name(bad)), UrlPart::Table, "{bad}");
        }
        assert_eq!(
            check_table_name(&"t".repeat(256)).unwrap_err().reason,
            format!("`{}` must be 3 to 255 characters long", "t".repeat(256))
        );
    }

    #[test]
    fn percent_decoding_refuses_bad_escapes_and_bad_utf8() {
        assert_eq!(percent_decode("a%3Ab%2f").as_deref(), Some("a:b/"));
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        for bad in ["%", "%4", "%zz", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_pairs_skip_empty_pairs() {
        let pairs: Vec<_> = query_pairs("a=1&&b&c=").collect();
        assert_eq!(pairs, [("a", "1"), ("b", ""), ("c", "")]);
    }

    #[test]
    fn the_message_names_the_part() {
        let error = InvalidUrl::new(parameter("region"), "bad");
        assert_eq!(
            error.to_string(),
            "bad query parameter `region` in the URL: bad"
        );
        assert_eq!(UrlPart::Table.to_string(), "table name");
        assert_eq!(UrlPart::Query.to_string(), "query");
    }
}
