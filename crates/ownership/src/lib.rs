//! Which instruments an Asset Service instance evaluates. Every instance holds every rule, but
//! each instrument's rules must be evaluated by one instance only: two instances whose tick
//! streams differ (one missed a re-arming trade) would number a repeating rule's firings
//! differently and raise two alerts for one crossing; and each would spend its exchange
//! connections (KIS allows 41 streams per key) on the same instruments.
//!
//! Instruments fall into [`SHARDS`] shards by a hash that every build computes alike
//! ([`shard`]). Instances announce themselves on a channel; each computes the same assignment of
//! shards to the instances it has heard from ([`rendezvous`]: a shard moves only when its owner
//! comes or goes) and holds a lease in the shared cache on each shard assigned to it
//! ([`ownership`]). The lease, not the assignment, decides: while instances disagree about who
//! is alive, a shard stays with one. The evaluating side learns its shards, and says when it has
//! switched, through one [`handshake`].

pub mod handshake;
pub mod ownership;
pub mod rendezvous;
pub mod shard;

pub use handshake::{handshake, Assigned, Assigner};
pub use ownership::Ownership;
pub use shard::{shard_of, ShardSet, SHARDS};
