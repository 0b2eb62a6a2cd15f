//! Generates the bindings of the Linux stand-in for wdk-sys and the import
//! library of ntoskrnl.exe.
//!
//! Like the real wdk-sys (wdk-build's `bindgen.rs`), bindgen runs over the
//! same input write `types.rs`, `constants.rs` and `ntddk.rs` (functions) into
//! `OUT_DIR` (and `status.rs`, the `STATUS_*` constants the real crate writes
//! by hand), with `use_core`, `derive_default`, module-constant enums and the
//! same clang flags. The input is `wdk-sys.h`: mingw-w64's DDK headers plus the
//! declarations where the WDK differs. C's `long` is 32 bits on Windows, so the
//! C types come from this crate's `ctypes` module (LLP64) rather than
//! `core::ffi`, which keeps the layouts right when the bindings are compiled for
//! the Linux host (unit tests).
//!
//! Every function the headers declare, and every variable as a `DATA` export,
//! is written to `ntoskrnl.def`, which `llvm-dlltool` turns into `ntoskrnl.lib`;
//! the linker only imports what a driver uses.

use std::{
    env,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
};

use bindgen::{
    CodegenConfig,
    callbacks::{IntKind, ItemInfo, ItemKind, ParseCallbacks},
};

/// Where Debian's `mingw-w64-common` puts the headers.
const DEFAULT_MINGW_INCLUDE: &str = "/usr/share/mingw-w64/include";

/// Clang flags of wdk-build's `Config::wdk_bindgen_compiler_flags`.
const WDK_BINDGEN_COMPILER_FLAGS: [&str; 13] = [
    "-fms-compatibility",
    "-fms-extensions",
    "-fdelayed-template-parsing",
    "--warn-=no-nonportable-include-path",
    "--warn-=no-pragma-pack",
    "--warn-=no-ignored-attributes",
    "--warn-=no-ignored-pragma-intrinsic",
    "--warn-=no-visibility",
    "--warn-=no-switch",
    "--warn-=no-comment",
    "--warn-=no-deprecated-declarations",
    "--warn-=no-invalid-token-paste",
    "--warn-=no-microsoft",
];

/// Preprocessor definitions of wdk-build's `Config::preprocessor_definitions`
/// for an AMD64 WDM driver, then the GNU version clang reports for the mingw
/// target: mingw-w64's headers take their GNU paths (`__attribute__`,
/// `__builtin_va_list`) only when `__GNUC__` is defined, which clang does not do
/// for the MSVC target.
const WDM_AMD64_DEFINES: [&str; 7] = [
    "_WIN64",
    "_AMD64_",
    "AMD64",
    "_KERNEL_MODE",
    "__GNUC__=4",
    "__GNUC_MINOR__=2",
    "__GNUC_PATCHLEVEL__=1",
];

/// Collects the names of the functions bindgen emits, for `ntoskrnl.def`.
#[derive(Debug, Default)]
struct FunctionNames(Arc<Mutex<Vec<String>>>);

impl ParseCallbacks for FunctionNames {
    fn generated_name_override(&self, item: ItemInfo<'_>) -> Option<String> {
        if let ItemKind::Function = item.kind {
            self.0
                .lock()
                .expect("no other thread panics while holding the lock")
                .push(item.name.to_owned());
        }
        None
    }
}

/// Types the WDK gives to macro constants that bindgen would otherwise type by
/// value: `POOL_FLAG_*` are `0x40UI64` (ULONG64) in the WDK, `STATUS_*` are
/// `((NTSTATUS)0x...L)`.
#[derive(Debug)]
struct WdkConstantTypes;

impl ParseCallbacks for WdkConstantTypes {
    fn int_macro(&self, name: &str, _value: i64) -> Option<IntKind> {
        if name.starts_with("POOL_FLAG_") {
            Some(IntKind::U64)
        } else if name.starts_with("STATUS_") {
            Some(IntKind::Custom { name: "NTSTATUS", is_signed: true })
        } else {
            None
        }
    }
}

fn builder(input: &Path, include: &Path, clang_include: &Path) -> bindgen::Builder {
    let ddk = include.join("ddk");
    bindgen::Builder::default()
        .header(input.to_str().expect("the crate's path is UTF-8"))
        .use_core()
        .ctypes_prefix("crate::ctypes")
        .derive_default(true)
        .generate_cstr(true)
        .detect_include_paths(false)
        // The driver's target, whatever cargo builds for (the host, in unit
        // tests): MSVC's layouts, and enums are `int` as in the WDK's bindings.
        .clang_arg("--target=x86_64-pc-windows-msvc")
        .clang_arg("-fno-builtin")
        .clang_arg(format!("--include-directory={}", ddk.display()))
        .clang_arg(format!("--include-directory={}", include.display()))
        // Clang's own headers (stdarg.h, mmintrin.h, ...), which mingw-w64's
        // headers include; bindgen is told not to detect include paths.
        .clang_arg(format!("-isystem{}", clang_include.display()))
        .clang_args(WDM_AMD64_DEFINES.map(|d| format!("--define-macro={d}")))
        .clang_args(WDK_BINDGEN_COMPILER_FLAGS)
        // The compiler's intrinsics headers (AMX tiles, AVX-512 vectors, ...)
        // that mingw-w64's intrin.h includes: not part of the WDK's API.
        .blocklist_file(format!("{}/.*", clang_include.display()))
        // Moved aside by wdk-sys.h, which declares the WDK's shape instead.
        .blocklist_item(".*MINGW_FILE_RENAME_INFORMATION")
        // Deprecated, as in wdk-build.
        .blocklist_item("ExAllocatePoolWithTag")
        .blocklist_item("ExAllocatePoolWithQuotaTag")
        .blocklist_item("ExAllocatePoolWithTagPriority")
        .blocklist_item("ExAllocatePool")
        .opaque_type("_KGDTENTRY64")
        .opaque_type("_KIDTENTRY64")
        .must_use_type("NTSTATUS")
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .parse_callbacks(Box::new(WdkConstantTypes))
}

fn generate(builder: bindgen::Builder, out: &Path) {
    builder
        .generate()
        .unwrap_or_else(|error| panic!("bindgen failed for {}: {error}", out.display()))
        .write_to_file(out)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", out.display()));
}

fn find_tool(env_var: &str, candidates: &[&str]) -> PathBuf {
    println!("cargo::rerun-if-env-changed={env_var}");
    if let Some(path) = env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let path = env::var_os("PATH").unwrap_or_default();
    candidates
        .iter()
        .flat_map(|name| env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "none of {candidates:?} is on PATH (Debian: apt-get install llvm-19 clang-19), \
                 and {env_var} is not set"
            )
        })
}

/// The folder of clang's own headers: `<resource dir>/include`.
fn clang_resource_include() -> PathBuf {
    let clang = find_tool("CLANG_PATH", &["clang-19", "clang"]);
    let output = Command::new(&clang)
        .arg("-print-resource-dir")
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", clang.display()));
    assert!(output.status.success(), "{} -print-resource-dir failed", clang.display());
    let dir = String::from_utf8(output.stdout).expect("clang prints a UTF-8 path");
    PathBuf::from(dir.trim()).join("include")
}

/// The variables the headers declare (`extern POBJECT_TYPE *PsThreadType;`),
/// from the generated bindings' `pub static` items, formatted or not.
fn extern_statics(bindings: &str) -> Vec<String> {
    bindings
        .split("pub static ")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix("mut ").unwrap_or(rest).trim_start();
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            (end > 0).then(|| rest[..end].to_owned())
        })
        .collect()
}

/// Writes `ntoskrnl.def` (every function, and every variable as a `DATA`
/// export, whose only symbol is `__imp_<name>`: stricter than the WDK's
/// ntoskrnl.lib, which also defines the bare name as the import slot) and
/// turns it into `ntoskrnl.lib`.
fn write_import_library(out_dir: &Path, mut functions: Vec<String>, variables: &[String]) {
    functions.sort();
    functions.dedup();
    let mut def = String::from("LIBRARY ntoskrnl.exe\nEXPORTS\n");
    for name in &functions {
        writeln!(def, "    {name}").expect("writing to a String cannot fail");
    }
    for name in variables {
        writeln!(def, "    {name} DATA").expect("writing to a String cannot fail");
    }
    let def_path = out_dir.join("ntoskrnl.def");
    std::fs::write(&def_path, def).expect("OUT_DIR is writable");
    let lib_path = out_dir.join("ntoskrnl.lib");
    let dlltool = find_tool("LLVM_DLLTOOL", &["llvm-dlltool-19", "llvm-dlltool"]);
    let status = Command::new(&dlltool)
        .args(["-m", "i386:x86-64", "-d"])
        .arg(&def_path)
        .arg("-l")
        .arg(&lib_path)
        .status()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", dlltool.display()));
    assert!(status.success(), "{} failed: {status}", dlltool.display());
    println!("cargo::rustc-link-search=native={}", out_dir.display());
}

fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_library_build()?;

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let input = manifest_dir.join("wdk-sys.h");
    println!("cargo::rerun-if-changed={}", input.display());
    println!("cargo::rerun-if-env-changed=WDK_SYS_MINGW_INCLUDE");
    let include = env::var_os("WDK_SYS_MINGW_INCLUDE")
        .map_or_else(|| PathBuf::from(DEFAULT_MINGW_INCLUDE), PathBuf::from);
    assert!(
        include.join("ddk/ntifs.h").is_file(),
        "{} has no ddk/ntifs.h: install mingw-w64's headers (Debian: apt-get install \
         mingw-w64-common) or set WDK_SYS_MINGW_INCLUDE",
        include.display()
    );

    let clang_include = clang_resource_include();
    let names = Arc::new(Mutex::new(Vec::new()));
    // The four runs are independent: bindgen loads libclang in each thread.
    std::thread::scope(|scope| {
        let base = || builder(&input, &include, &clang_include);
        let out_dir = &out_dir;
        scope.spawn(move || {
            generate(base().with_codegen_config(CodegenConfig::TYPES), &out_dir.join("types.rs"));
        });
        // Constants and variables as the real wdk-sys generates them: what
        // cexpr reads from the macros, with no clang macro fallback, so a
        // constant the real crate lacks (a macro with a cast, say) is missing
        // here too.
        scope.spawn(move || {
            generate(
                base().with_codegen_config(CodegenConfig::VARS).blocklist_var("STATUS_.*"),
                &out_dir.join("constants.rs"),
            );
        });
        // The real crate's STATUS_* constants are written by hand from
        // windows-sys (its src/constants.rs), since cexpr cannot read
        // `((NTSTATUS)0xC0000001L)`: here clang evaluates those macros, and
        // only those.
        scope.spawn(move || {
            generate(
                base()
                    .with_codegen_config(CodegenConfig::VARS)
                    .allowlist_var("STATUS_.*")
                    .clang_macro_fallback()
                    .clang_macro_fallback_build_dir(out_dir),
                &out_dir.join("status.rs"),
            );
        });
        generate(
            base()
                .with_codegen_config((CodegenConfig::TYPES | CodegenConfig::VARS).complement())
                .parse_callbacks(Box::new(FunctionNames(Arc::clone(&names)))),
            &out_dir.join("ntddk.rs"),
        );
    });
    let functions = std::mem::take(&mut *names.lock().expect("the bindgen threads have ended"));
    let constants = std::fs::read_to_string(out_dir.join("constants.rs"))
        .expect("the constants pass wrote constants.rs");
    write_import_library(&out_dir, functions, &extern_statics(&constants));
    Ok(())
}
