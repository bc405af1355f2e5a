//! Echo: every byte that arrives goes back to its sender, unchanged and in order.
//!
//! The smallest protocol, and the model's test bench: it consumes everything it is
//! given, so all buffering, ordering and backpressure seen in tests is the model's.

use super::{ConnId, Outbox, Protocol};
use bytes::Bytes;
use std::net::SocketAddr;

#[derive(Debug, Default)]
pub struct Echo;

impl Protocol for Echo {
    type Conn = ();

    fn open(&mut self, _id: ConnId, _peer: SocketAddr, _out: &mut Outbox) {}

    fn data(&mut self, id: ConnId, _conn: &mut (), input: &[u8], out: &mut Outbox) -> usize {
        out.send(id, Bytes::copy_from_slice(input));
        input.len()
    }

    fn closed(&mut self, _id: ConnId, _conn: (), _out: &mut Outbox) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Action, Target};

    #[test]
    fn echoes_everything_to_the_sender() {
        let mut e = Echo;
        let mut out = Outbox::new();
        let id = ConnId(7);
        e.open(id, "127.0.0.1:1".parse().unwrap(), &mut out);
        assert!(out.is_empty());
        assert_eq!(e.data(id, &mut (), b"\x00hello\xff", &mut out), 7);
        let acts: Vec<Action> = out.drain().collect();
        assert!(
            matches!(&acts[..], [Action::Send { to: Target::One(ConnId(7)), data }] if &data[..] == b"\x00hello\xff")
        );
    }
}
