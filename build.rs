//! Generates the gRPC code and the descriptor set served by reflection.
//! protoc comes from the protoc-bin-vendored crate: a fresh machine needs nothing
//! but cargo. It is handed to prost-build directly (no process-wide env var).
use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // Undecodable requests are INVALID_ARGUMENT, not INTERNAL (src/api/codec.rs).
        .codec_path("crate::api::codec::ChatCodec")
        .file_descriptor_set_path(out.join("chatwire_descriptor.bin"))
        .compile_with_config(config, &["proto/chatwire/v1/chatwire.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
