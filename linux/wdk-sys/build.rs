//! Makes the import library of ntoskrnl.exe from `src/generated/ntoskrnl.def`
//! (every function the bindings declare, and every variable as a `DATA`
//! export) with `llvm-dlltool`, after wdk-build's configuration. The bindings
//! themselves are generated ahead of time (`generate.sh`); building needs
//! neither bindgen nor clang.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn dlltool() -> PathBuf {
    println!("cargo::rerun-if-env-changed=LLVM_DLLTOOL");
    if let Some(path) = env::var_os("LLVM_DLLTOOL") {
        return PathBuf::from(path);
    }
    let path = env::var_os("PATH").unwrap_or_default();
    ["llvm-dlltool-19", "llvm-dlltool"]
        .iter()
        .flat_map(|name| env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .expect(
            "neither llvm-dlltool-19 nor llvm-dlltool is on PATH (Debian: apt-get install \
             llvm-19), and LLVM_DLLTOOL is not set",
        )
}

fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_library_build()?;

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let def = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/generated/ntoskrnl.def");
    println!("cargo::rerun-if-changed={}", def.display());
    let dlltool = dlltool();
    let status = Command::new(&dlltool)
        .args(["-m", "i386:x86-64", "-d"])
        .arg(&def)
        .arg("-l")
        .arg(out_dir.join("ntoskrnl.lib"))
        .status()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", dlltool.display()));
    assert!(status.success(), "{} failed: {status}", dlltool.display());
    println!("cargo::rustc-link-search=native={}", out_dir.display());
    Ok(())
}
