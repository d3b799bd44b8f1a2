//! Generates the gRPC code and the descriptor set served by reflection.
//! protoc comes from the protoc-bin-vendored crate: a fresh machine needs nothing but cargo.
use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts are single-threaded; prost-build reads PROTOC.
    env::set_var("PROTOC", protoc);
    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("chatwire_descriptor.bin"))
        .compile_protos(&["proto/chatwire/v1/chatwire.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
