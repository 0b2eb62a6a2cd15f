//! Generates the bindings of the Linux stand-in for wdk-sys, which ships them
//! in `src/generated/` (as windows-sys ships its own), so that building a
//! driver needs neither bindgen nor clang. `linux/wdk-sys/generate.sh` runs it;
//! a test in `linux/tests/` runs it again and fails on any difference.
//!
//! Like the real wdk-sys (wdk-build's `bindgen.rs`), bindgen runs over the same
//! input to write `types.rs`, `constants.rs` and `ntddk.rs` (functions), and
//! `status.rs`, the `STATUS_*` constants the real crate writes by hand, with
//! `use_core`, `derive_default`, module-constant enums and the same clang
//! flags. The input is `wdk-sys.h`: mingw-w64's DDK headers plus the
//! declarations where the WDK differs. C's `long` is 32 bits on Windows, so the
//! C types come from the crate's `ctypes` module (LLP64) rather than
//! `core::ffi`, which keeps the layouts right when the bindings are compiled
//! for the Linux host (unit tests).
//!
//! Every function the headers declare, and every variable as a `DATA` export,
//! is written to `ntoskrnl.def`, which wdk-sys's build script turns into
//! `ntoskrnl.lib` with `llvm-dlltool`; the linker only imports what a driver
//! uses.
//!
//! Usage: `wdk-sys-generator OUT_DIR HEADERS`, HEADERS naming the headers'
//! origin for the files' first line (`mingw-w64-common 10.0.0-3`). The
//! headers are read from `WDK_SYS_MINGW_INCLUDE` (default: Debian's
//! `/usr/share/mingw-w64/include`), clang's own headers from the resource
//! directory of `CLANG_PATH` (default: `clang-19` or `clang` on PATH). Nothing
//! is written unless every file could be generated.

use std::{
    env,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
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
        .header(input.to_string_lossy())
        .disable_header_comment()
        .formatter(bindgen::Formatter::Prettyplease)
        .use_core()
        .ctypes_prefix("crate::ctypes")
        .derive_default(true)
        .generate_cstr(true)
        .detect_include_paths(false)
        // The driver's target, whatever cargo builds the crate for (the host,
        // in unit tests): MSVC's layouts, and enums are `int` as in the WDK's
        // bindings.
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
        .parse_callbacks(Box::new(WdkConstantTypes))
}

fn generate(builder: bindgen::Builder, name: &str) -> Result<String, String> {
    builder
        .generate()
        .map(|bindings| bindings.to_string())
        .map_err(|error| format!("bindgen failed for {name}: {error}"))
}

fn find_tool(env_var: &str, candidates: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = env::var_os(env_var) {
        return Ok(PathBuf::from(path));
    }
    let path = env::var_os("PATH").unwrap_or_default();
    candidates
        .iter()
        .flat_map(|name| env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "none of {candidates:?} is on PATH (Debian: apt-get install clang-19), and \
                 {env_var} is not set"
            )
        })
}

/// The folder of clang's own headers: `<resource dir>/include`.
fn clang_resource_include() -> Result<PathBuf, String> {
    let clang = find_tool("CLANG_PATH", &["clang-19", "clang"])?;
    let output = Command::new(&clang)
        .arg("-print-resource-dir")
        .output()
        .map_err(|error| format!("cannot run {}: {error}", clang.display()))?;
    if !output.status.success() {
        return Err(format!("{} -print-resource-dir failed", clang.display()));
    }
    let dir = String::from_utf8(output.stdout)
        .map_err(|_| format!("{} printed a resource dir that is not UTF-8", clang.display()))?;
    Ok(PathBuf::from(dir.trim()).join("include"))
}

/// The variables the headers declare (`extern POBJECT_TYPE *PsThreadType;`),
/// from the generated bindings' `pub static` items.
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

/// `ntoskrnl.def`: every function, and every variable as a `DATA` export,
/// whose only symbol is `__imp_<name>` (stricter than the WDK's ntoskrnl.lib,
/// which also defines the bare name as the import slot).
fn import_definition(mut functions: Vec<String>, variables: &[String]) -> String {
    functions.sort();
    functions.dedup();
    let mut def = String::from("LIBRARY ntoskrnl.exe\nEXPORTS\n");
    for name in &functions {
        writeln!(def, "    {name}").expect("writing to a String cannot fail");
    }
    for name in variables {
        writeln!(def, "    {name} DATA").expect("writing to a String cannot fail");
    }
    def
}

/// The generated files, by name, in memory.
fn bindings(headers: &str, include: &Path, scratch: &Path) -> Result<Vec<(String, String)>, String> {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wdk-sys.h");
    if !include.join("ddk/ntifs.h").is_file() {
        return Err(format!(
            "{} has no ddk/ntifs.h: install mingw-w64's headers (Debian: apt-get install \
             mingw-w64-common) or set WDK_SYS_MINGW_INCLUDE",
            include.display()
        ));
    }
    let clang_include = clang_resource_include()?;
    let names = Arc::new(Mutex::new(Vec::new()));
    let base = || builder(&input, include, &clang_include);
    // The four runs are independent: bindgen loads libclang in each thread.
    let [types, constants, status, ntddk] = std::thread::scope(|scope| {
        let types = scope.spawn(|| {
            generate(base().with_codegen_config(CodegenConfig::TYPES), "types.rs")
        });
        // Constants and variables as the real wdk-sys generates them: what
        // cexpr reads from the macros, with no clang macro fallback, so a
        // constant the real crate lacks (a macro with a cast, say) is missing
        // here too.
        let constants = scope.spawn(|| {
            generate(
                base().with_codegen_config(CodegenConfig::VARS).blocklist_var("STATUS_.*"),
                "constants.rs",
            )
        });
        // The real crate's STATUS_* constants are written by hand from
        // windows-sys (its src/constants.rs), since cexpr cannot read
        // `((NTSTATUS)0xC0000001L)`: here clang evaluates those macros, and
        // only those.
        let status = scope.spawn(|| {
            generate(
                base()
                    .with_codegen_config(CodegenConfig::VARS)
                    .allowlist_var("STATUS_.*")
                    .clang_macro_fallback()
                    .clang_macro_fallback_build_dir(scratch),
                "status.rs",
            )
        });
        let ntddk = generate(
            base()
                .with_codegen_config((CodegenConfig::TYPES | CodegenConfig::VARS).complement())
                .parse_callbacks(Box::new(FunctionNames(Arc::clone(&names)))),
            "ntddk.rs",
        );
        [types, constants, status]
            .map(|run| run.join().unwrap_or_else(|_| Err("a bindgen run panicked".to_owned())))
            .into_iter()
            .chain([ntddk])
            .collect::<Result<Vec<_>, _>>()
            .map(|files| <[String; 4]>::try_from(files).expect("four runs"))
    })?;
    let functions = std::mem::take(&mut *names.lock().expect("the bindgen threads have ended"));
    let def = import_definition(functions, &extern_statics(&constants));
    let version = bindgen::clang_version()
        .parsed
        .map_or_else(|| "unknown".to_owned(), |(major, minor)| format!("{major}.{minor}"));
    let first_line = format!(
        "// @generated by linux/wdk-sys/generate.sh (bindgen 0.73.2, libclang {version}) from \
         wdk-sys.h over the DDK headers of {headers}. Do not edit.\n\n"
    );
    let rust = [("types.rs", types), ("constants.rs", constants), ("status.rs", status), ("ntddk.rs", ntddk)]
        .map(|(name, text)| (name.to_owned(), format!("{first_line}{text}")));
    Ok(rust.into_iter().chain([("ntoskrnl.def".to_owned(), def)]).collect())
}

fn run(out_dir: &Path, headers: &str) -> Result<(), String> {
    let include = env::var_os("WDK_SYS_MINGW_INCLUDE")
        .map_or_else(|| PathBuf::from(DEFAULT_MINGW_INCLUDE), PathBuf::from);
    let scratch = env::temp_dir().join(format!("wdk-sys-generator.{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .map_err(|error| format!("cannot create {}: {error}", scratch.display()))?;
    let files = bindings(headers, &include, &scratch);
    // Best effort: the folder only held clang's precompiled header.
    let _ = std::fs::remove_dir_all(&scratch);
    let files = files?;
    std::fs::create_dir_all(out_dir)
        .map_err(|error| format!("cannot create {}: {error}", out_dir.display()))?;
    for (name, text) in files {
        let path = out_dir.join(name);
        std::fs::write(&path, text)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let [out_dir, headers] = args.as_slice() else {
        eprintln!(
            "usage: wdk-sys-generator OUT_DIR HEADERS (HEADERS: the headers' origin, e.g. \
             \"mingw-w64-common 10.0.0-3\"); got {args:?}"
        );
        return ExitCode::from(2);
    };
    if headers.trim().is_empty() || headers.contains('\n') {
        eprintln!("wdk-sys-generator: HEADERS must be one non-empty line, got {headers:?}");
        return ExitCode::from(2);
    }
    match run(Path::new(out_dir), headers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wdk-sys-generator: {message}");
            ExitCode::FAILURE
        }
    }
}
