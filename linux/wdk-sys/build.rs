//! Makes the import library of ntoskrnl.exe from `src/generated/ntoskrnl.def`
//! (every function the bindings declare, and every variable as a `DATA`
//! export) with lld-link's `/lib` mode, after wdk-build's configuration. The bindings
//! themselves are generated ahead of time (`generate.sh`); building needs
//! neither bindgen nor clang.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// lld-link, the driver's linker: given `/lib` first it acts as `lib.exe`
/// (llvm-lib), which makes an import library from a module-definition file,
/// byte for byte what `llvm-dlltool -m i386:x86-64 -d` makes.
fn lld_link() -> PathBuf {
    let path = env::var_os("PATH").unwrap_or_default();
    ["lld-link-19", "lld-link"]
        .iter()
        .flat_map(|name| env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .expect("neither lld-link-19 nor lld-link is on PATH (Debian: apt-get install lld-19)")
}

fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_library_build()?;

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let def = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/generated/ntoskrnl.def");
    println!("cargo::rerun-if-changed={}", def.display());
    let lib_tool = lld_link();
    let status = Command::new(&lib_tool)
        .args(["/lib", "/machine:x64"])
        .arg(format!("/def:{}", def.display()))
        .arg(format!("/out:{}", out_dir.join("ntoskrnl.lib").display()))
        .status()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", lib_tool.display()));
    assert!(status.success(), "{} /lib failed: {status}", lib_tool.display());
    println!("cargo::rustc-link-search=native={}", out_dir.display());
    Ok(())
}
