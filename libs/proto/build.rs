//! Compiles every `.proto` under `proto/` with protox (no `protoc` needed), generates
//! prost messages and tonic clients/servers, writes the descriptor set served by
//! reflection, and derives the table of per-RPC scopes from `idic.common.v1.required_scope`.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use protox::prost::Message as _;
use protox::prost_reflect::{DescriptorPool, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let files = proto_files(&proto_root)?;
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_source_info(true).include_imports(true);
    for file in &files {
        compiler.open_file(file.strip_prefix(&proto_root)?)?;
    }

    let fds = compiler.file_descriptor_set();
    std::fs::write(out_dir.join("idic_descriptor.bin"), fds.encode_to_vec())?;
    std::fs::write(out_dir.join("method_scopes.rs"), method_scopes(&compiler.descriptor_pool())?)?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}

/// All `.proto` files below `root`, sorted so the build is reproducible.
fn proto_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Rust source of `METHOD_SCOPES`: every IDIC RPC path with its required scope.
/// An RPC without the option fails the build, so no method is left unguarded.
fn method_scopes(pool: &DescriptorPool) -> Result<String, Box<dyn std::error::Error>> {
    let scope_option = pool
        .get_extension_by_name("idic.common.v1.required_scope")
        .ok_or("idic.common.v1.required_scope is not defined")?;
    let mut rows = Vec::new();
    let mut streaming = Vec::new();
    for service in pool.services() {
        if !service.full_name().starts_with("idic.") {
            continue;
        }
        for method in service.methods() {
            let options = method.options();
            let scope = match options.get_extension(&scope_option).as_ref() {
                Value::String(s) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(format!(
                        "{}.{} has no (idic.common.v1.required_scope) option",
                        service.full_name(),
                        method.name()
                    )
                    .into());
                }
            };
            rows.push((format!("/{}/{}", service.full_name(), method.name()), scope));
            if method.is_client_streaming() {
                streaming.push(format!("/{}/{}", service.full_name(), method.name()));
            }
        }
    }
    rows.sort();
    let mut src = String::from(
        "/// Every IDIC RPC path (`/package.Service/Method`) with the scope its caller needs,\n\
         /// sorted by path, derived from the `required_scope` option in `proto/`.\n\
         pub const METHOD_SCOPES: &[(&str, &str)] = &[\n",
    );
    for (path, scope) in rows {
        writeln!(src, "    ({path:?}, {scope:?}),")?;
    }
    src.push_str("];\n");
    streaming.sort();
    src.push_str(
        "\n/// IDIC RPC paths whose request is a client stream (bulk uploads), sorted: they run\n\
         /// as long as the client keeps sending, so the server's default deadline does not apply.\n\
         pub const CLIENT_STREAMING_METHODS: &[&str] = &[\n",
    );
    for path in streaming {
        writeln!(src, "    {path:?},")?;
    }
    src.push_str("];\n");
    Ok(src)
}
