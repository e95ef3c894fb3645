//! The engine runtime (being written).
