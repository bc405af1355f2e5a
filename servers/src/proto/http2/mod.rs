//! HTTP/2 (RFC 9113) as a second wire format for the static server: frames
//! (`frame`), header compression (`hpack`) and a sans-I/O server connection
//! (`conn`). Nothing here knows about files or sites: the HTTP module turns each
//! request this connection yields into the same core call an HTTP/1 request
//! makes, and hands the answer back as header fields and body segments.

pub mod conn;
pub mod frame;
pub mod hpack;

pub use conn::{Connection, Incoming, Request, Segment};
pub use frame::{ErrorCode, PREFACE};
