//! HTTP ingress (being written).
