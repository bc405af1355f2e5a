//! Concurrency models, one file each: they own sockets and readiness, and drive any
//! [`crate::proto::Protocol`].
