//! The stages of the packet path, one module each. Every stage takes a whole vector,
//! moves each packet to exactly one output (the next stage, the control thread) or drops
//! it under one of its named reasons, and leaves its input empty.

pub mod classify;
pub mod decrypt;
pub mod encrypt;
pub mod offload;
pub mod route;
