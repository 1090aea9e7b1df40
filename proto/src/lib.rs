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
