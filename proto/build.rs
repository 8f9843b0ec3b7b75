//! Generates the gRPC code with protox, a pure-Rust protobuf compiler: no `protoc` needed.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/release_ledger/v1/ledger.proto",
        "proto/release_ledger/v1/query.proto",
        "proto/release_ledger/v1/admin.proto",
        "proto/release_ledger/v1/raft.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // The encoded descriptor set serves gRPC reflection.
    std::fs::write(out_dir.join("release_ledger_descriptor.bin"), descriptors.encode_to_vec())?;
    // Arrow Flight's schema, for reflection only: the server uses the arrow-flight crate's types.
    let flight = "proto/arrow/flight/protocol/Flight.proto";
    println!("cargo:rerun-if-changed={flight}");
    let flight_descriptors = protox::compile([flight], ["proto"])?;
    std::fs::write(out_dir.join("flight_descriptor.bin"), flight_descriptors.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::StrictCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
