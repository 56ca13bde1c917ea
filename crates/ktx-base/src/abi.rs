//! The ABI version ktx speaks with its Python runtime (one-shot `python -m semantic_layer`
//! calls and the daemon's `/health` and `/v1/call`). Python defines its own copy once
//! (`ABI_VERSION` in the runtime package); the two must match.

/// The ABI version: requests carry it, replies and `/health` must report it.
pub const ABI_VERSION: u32 = 1;
