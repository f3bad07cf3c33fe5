//! The network core: one task around a pure session state machine.
//!
//! - [`connect`]: opening authenticated streams (TLS, `TCP_NODELAY`, loopback-only plain TCP)
//!   and the reconnect loop that stops on final errors.
//! - [`session`]: the pubsub client as a state machine (no I/O, no clock).
//! - [`proto`]: the protocol elements, one module each (build and parse).
//! - [`events`]: the owned messages between the core and its front ends.
//! - [`error`]: why a request failed, typed, and in plain words.
//! - [`task`]: the async shell that runs a session over a real stream.
//! - [`guard`]: depth and size limits on what peers send, checked before the XML parser.

pub mod component;
pub mod connect;
pub mod error;
pub mod events;
pub mod guard;
pub mod proto;
pub mod session;
pub mod task;

pub use events::{
    Answer, Command, ConnState, NetEvent, NodeKey, OwnerDone, OwnerOp, RequestId, RequestIds,
    SnapshotReason,
};
pub use task::{NetHandle, spawn};
