//! Identity records at the boundary: wire shapes, parsing into domain types, and the sealed
//! storage form.

pub mod digest;
pub mod dto;
pub mod parse;
pub mod seal;
