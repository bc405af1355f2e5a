//! Connection commands: PING, ECHO, QUIT, SELECT.

use super::{wrong_arity, Ctx, ERR_NOT_INT};
use crate::proto::resp::{parse_i64, Args};

pub(crate) fn ping(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match args.len() {
        1 => ctx.out.extend_from_slice(b"+PONG\r\n"),
        2 => ctx.bulk(args.get(1)),
        _ => ctx.err(&wrong_arity("ping")),
    }
}

pub(crate) fn echo(ctx: &mut Ctx<'_>, args: Args<'_>) {
    ctx.bulk(args.get(1));
}

pub(crate) fn quit(ctx: &mut Ctx<'_>, _args: Args<'_>) {
    ctx.ok();
    ctx.quit = true;
}

/// There is one database: 0.
pub(crate) fn select(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match parse_i64(args.get(1)) {
        None => ctx.err(ERR_NOT_INT),
        Some(0) => ctx.ok(),
        Some(_) => ctx.err("ERR DB index is out of range"),
    }
}
