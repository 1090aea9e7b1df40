//! The `ductstream.v1` gRPC API and its tonic/prost code.
//!
//! The `.proto` files live in `proto/ductstream/v1/`. [`FILE_DESCRIPTOR_SET`] is what the
//! broker's reflection service serves, so `grpcurl` works without the files.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("ductstream.v1");
}

/// The encoded descriptors of every ductstream.v1 file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ductstream_v1_descriptor");

pub use prost_types::Timestamp;

/// A protobuf timestamp for `ms` milliseconds since the Unix epoch.
pub fn timestamp_from_ms(ms: i64) -> Timestamp {
    Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// Milliseconds since the Unix epoch of a protobuf timestamp (saturating).
pub fn timestamp_to_ms(t: &Timestamp) -> i64 {
    t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000)
}
