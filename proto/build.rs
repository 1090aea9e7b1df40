//! Generates the ductstream.v1 messages, clients and servers, and the file descriptor set that
//! the broker's gRPC reflection service serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc and its well-known types, so a build needs no system package.
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("ductstream_v1_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                std::path::PathBuf::from("proto/ductstream/v1/stream.proto"),
                std::path::PathBuf::from("proto/ductstream/v1/flow.proto"),
                std::path::PathBuf::from("proto/ductstream/v1/change.proto"),
                std::path::PathBuf::from("proto/ductstream/v1/sink.proto"),
                std::path::PathBuf::from("proto/ductstream/v1/security.proto"),
            ],
            &[std::path::PathBuf::from("proto"), well_known],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
