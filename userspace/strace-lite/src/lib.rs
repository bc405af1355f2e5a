//! strace-lite: a ptrace syscall tracer in the shape of strace.
//!
//! The one idea: syscalls are data. `table` holds a row per syscall (classes,
//! argument kinds, return kind); `decode` turns an argument kind into text; `tracer`
//! only moves stops along. Adding a decoder is adding a row, not a code path.

pub mod decode;
pub mod error;
pub mod exec;
pub mod fdinfo;
pub mod filter;
pub mod mem;
pub mod nargs;
pub mod output;
pub mod ptrace;
pub mod qualify;
pub mod seccomp;
pub mod stack;
pub mod summary;
pub mod table;
pub mod tracer;
