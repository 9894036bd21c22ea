//! The outbox worker (claims due messages and makes one try per way out).
