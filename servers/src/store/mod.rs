//! Storage: the append-only log and the on-disk B-tree.

pub mod aof;
pub mod btree;
