//! The conformance suite every store backend must pass.
