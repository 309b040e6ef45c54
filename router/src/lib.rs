//! Redis Cluster slot routing.
