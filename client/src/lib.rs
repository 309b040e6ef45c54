//! The ACK-committing Redis Cluster writer.
