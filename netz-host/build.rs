//! Generates the server side of Agones' SDK services from netz-host's own
//! `.proto` files, with a vendored `protoc` (unless `PROTOC` names one), so
//! that a fresh machine needs nothing installed.

fn main() {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
        std::env::set_var("PROTOC", protoc);
    }
    let include = protoc_bin_vendored::include_path().expect("vendored protobuf includes");
    println!("cargo:rerun-if-changed=proto");
    tonic_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_protos(
            &[
                "proto/agones_sdk.proto",
                "proto/agones_sdk_alpha.proto",
                "proto/agones_sdk_beta.proto",
            ],
            &[std::path::PathBuf::from("proto"), include],
        )
        .expect("compile the Agones SDK protos");
}
