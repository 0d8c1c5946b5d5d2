//! Request ids: a UUID per request for `x-request-id`, the logs and the audit events.
//!
//! A request id must be unique, not secret, so it is not drawn from the operating
//! system's random source on every request (a system call each): it is a UUID of
//! version 8 (RFC 9562's custom layout) made of 60 random bits drawn once per process and
//! a 62-bit counter. Ids never repeat within a process, and two processes share a prefix
//! with a chance of 2^-60.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

/// Makes request ids: see the [module](self) docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeRequestIds;

impl MakeRequestIds {
    /// The next id.
    pub fn next_id() -> uuid::Uuid {
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| {
            let random = uuid::Uuid::new_v4().as_u64_pair();
            random.0 ^ random.1
        });
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0_u8; 16];
        bytes[..8].copy_from_slice(&prefix.to_be_bytes());
        bytes[8..].copy_from_slice(&count.to_be_bytes());
        // Sets the version (8) and variant bits: 4 bits of the prefix and the counter's
        // top 2, which 2^62 requests would take to reach.
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

impl MakeRequestId for MakeRequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let mut text = [0_u8; uuid::fmt::Hyphenated::LENGTH];
        let text = Self::next_id().hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn request_ids_are_distinct_uuids() {
        let mut make = MakeRequestIds;
        let request = Request::new(());
        let ids: HashSet<String> = (0..1000)
            .map(|_| {
                let id = make.make_request_id(&request).unwrap();
                let text = id.header_value().to_str().unwrap().to_owned();
                let parsed = uuid::Uuid::parse_str(&text).unwrap();
                assert_eq!(parsed.get_version_num(), 8);
                text
            })
            .collect();
        assert_eq!(ids.len(), 1000);
    }
}
