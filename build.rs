//! Compiles the protobuf API in proto/ without a system protoc (protox), and keeps the
//! encoded descriptor set in OUT_DIR for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/camut/v1/campaigns.proto",
        "proto/camut/v1/jobs.proto",
        "proto/camut/v1/drones.proto",
        "proto/camut/v1/deployer.proto",
        "proto/camut/v1/logs.proto",
        "proto/camut/v1/stats.proto",
        "proto/camut/v1/instances.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("camut_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // No transport helpers: the drone service has an rpc named `Connect`, which would
    // clash with the generated `connect` constructors; clients use `new(channel)`.
    // Histogram payloads as `Bytes`: a received delta's histograms are slices of the
    // message buffer, not one allocation and copy each.
    tonic_prost_build::configure()
        .build_transport(false)
        .bytes(".camut.v1.CallSeries")
        .bytes(".camut.v1.IterationCounts")
        .compile_fds(fds)?;
    Ok(())
}
