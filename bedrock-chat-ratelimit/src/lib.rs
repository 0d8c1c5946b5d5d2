#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod memory;

pub use memory::InMemoryRateLimiter;
