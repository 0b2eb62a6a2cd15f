//! Linux stand-in for Microsoft's `wdk-build` 0.6.0.
//!
//! The real crate needs the `windows` crate and an installed WDK; the Linux
//! build patches it with this one, which has the API that `wdk`, `wdk-alloc`,
//! `wdk-panic`, `wdk-sys` and the driver's `build.rs` call, and makes the same
//! checks. Of the WDK's base libraries only `ntoskrnl` is linked, from the
//! import library the stand-in `wdk-sys` generates.

use std::{
    env, fmt,
    path::{Path, PathBuf},
};

/// The driver model's cfg key and values.
const DRIVER_TYPE_CFG_KEY: &str = "driver_model__driver_type";
const DRIVER_TYPES: [&str; 3] = ["WDM", "KMDF", "UMDF"];

/// The real crate's linker arguments for a WDM driver, in its order.
pub const WDM_LINK_ARGS: [&str; 13] = [
    "/DRIVER",
    "/NODEFAULTLIB",
    "/SUBSYSTEM:NATIVE",
    "/KERNEL",
    "/ENTRY:DriverEntry",
    "/IGNORE:4257",
    "/IGNORE:4216",
    "/NXCOMPAT",
    "/DYNAMICBASE",
    "/MAP",
    "/MAPINFO:EXPORTS",
    "/OPT:REF,ICF",
    "/INTEGRITYCHECK",
];

/// Errors of the build configuration.
#[derive(Debug)]
pub enum ConfigError {
    /// A variable cargo sets for build scripts is missing.
    NotInBuildScript(&'static str),
    /// No `Cargo.lock` was found in the ancestors of `OUT_DIR`.
    TopLevelManifestNotFound(PathBuf),
    /// The top-level `Cargo.toml` could not be read.
    Io(PathBuf, std::io::Error),
    /// The top-level `Cargo.toml` is not valid TOML.
    Toml(PathBuf, String),
    /// The manifest has no `[package.metadata.wdk.driver-model] driver-type`.
    NoWdkConfigurationsDetected(PathBuf),
    /// The driver type is not one of WDM, KMDF, UMDF.
    UnknownDriverType(String),
    /// This stand-in only builds WDM drivers.
    UnsupportedDriverType(String),
    /// The C runtime is not statically linked (`-C target-feature=+crt-static`).
    StaticCrtNotEnabled,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInBuildScript(var) => {
                write!(f, "{var} is not set: wdk-build must be called from a build script")
            }
            Self::TopLevelManifestNotFound(dir) => write!(
                f,
                "no Cargo.lock in any ancestor of {}: cannot find the top-level Cargo.toml",
                dir.display()
            ),
            Self::Io(path, error) => write!(f, "cannot read {}: {error}", path.display()),
            Self::Toml(path, error) => write!(f, "{} is not valid TOML: {error}", path.display()),
            Self::NoWdkConfigurationsDetected(path) => write!(
                f,
                "{} has no [package.metadata.wdk.driver-model] driver-type",
                path.display()
            ),
            Self::UnknownDriverType(t) => {
                write!(f, "driver-type {t:?} is not one of WDM, KMDF, UMDF")
            }
            Self::UnsupportedDriverType(t) => write!(
                f,
                "driver-type {t}: the Linux stand-in for wdk-build only builds WDM drivers"
            ),
            Self::StaticCrtNotEnabled => write!(
                f,
                "the C runtime must be linked statically: build with -C target-feature=+crt-static"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

fn build_var(name: &'static str) -> Result<String, ConfigError> {
    env::var(name).map_err(|_| ConfigError::NotInBuildScript(name))
}

/// The `Cargo.toml` beside the first `Cargo.lock` above `OUT_DIR`, as the real crate finds it.
///
/// # Errors
///
/// Outside a build script, or when no ancestor holds a `Cargo.lock`.
pub fn find_top_level_cargo_manifest() -> Result<PathBuf, ConfigError> {
    let out_dir = PathBuf::from(build_var("OUT_DIR")?);
    out_dir
        .ancestors()
        .find(|path| path.join("Cargo.lock").exists())
        .map(|path| path.join("Cargo.toml"))
        .ok_or(ConfigError::TopLevelManifestNotFound(out_dir))
}

/// Reads `[package.metadata.wdk.driver-model] driver-type` from a manifest.
///
/// # Errors
///
/// I/O and TOML errors, a missing table, a type other than WDM, KMDF or UMDF.
pub fn driver_type_of(manifest: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|error| ConfigError::Io(manifest.to_path_buf(), error))?;
    driver_type_in(&text, manifest)
}

fn driver_type_in(manifest_text: &str, manifest: &Path) -> Result<String, ConfigError> {
    let table = toml::de::DeTable::parse(manifest_text)
        .map_err(|error| ConfigError::Toml(manifest.to_path_buf(), error.to_string()))?;
    let mut value = table.get_ref().get("package").map(toml::Spanned::get_ref);
    for key in ["metadata", "wdk", "driver-model", "driver-type"] {
        value = value.and_then(|v| v.get(key)).map(toml::Spanned::get_ref);
    }
    let driver_type = value
        .and_then(toml::de::DeValue::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::NoWdkConfigurationsDetected(manifest.to_path_buf()))?;
    if DRIVER_TYPES.contains(&driver_type.as_str()) {
        Ok(driver_type)
    } else {
        Err(ConfigError::UnknownDriverType(driver_type))
    }
}

fn emit_check_cfg_settings() {
    let values = DRIVER_TYPES.map(|t| format!("\"{t}\"")).join(",");
    println!("cargo::rustc-check-cfg=cfg({DRIVER_TYPE_CFG_KEY}, values({values}))");
}

fn emit_cfg_settings(driver_type: &str) {
    emit_check_cfg_settings();
    println!("cargo::rustc-cfg={DRIVER_TYPE_CFG_KEY}=\"{driver_type}\"");
}

fn top_level_driver_type() -> Result<String, ConfigError> {
    let manifest = find_top_level_cargo_manifest()?;
    println!("cargo::rerun-if-changed={}", manifest.display());
    driver_type_of(&manifest)
}

/// Emits the driver-model cfg for a library that depends on the WDK, or, with
/// no WDK configuration, only its `check-cfg` (`wdk-panic` needs the cfg to
/// build as `no_std`).
///
/// # Errors
///
/// Errors other than a missing WDK configuration.
pub fn configure_wdk_library_build() -> Result<(), ConfigError> {
    match top_level_driver_type() {
        Ok(driver_type) => emit_cfg_settings(&driver_type),
        Err(ConfigError::NoWdkConfigurationsDetected(_)) => emit_check_cfg_settings(),
        Err(error) => return Err(error),
    }
    Ok(())
}

/// Checks that the C runtime is static, then emits a WDM driver's linker
/// arguments and the driver-model cfg.
///
/// # Errors
///
/// A missing or non-WDM driver configuration, or a dynamic C runtime.
pub fn configure_wdk_binary_build() -> Result<(), ConfigError> {
    let target_features = build_var("CARGO_CFG_TARGET_FEATURE")?;
    if !target_features.split(',').any(|f| f == "crt-static") {
        return Err(ConfigError::StaticCrtNotEnabled);
    }
    let driver_type = top_level_driver_type()?;
    if driver_type != "WDM" {
        return Err(ConfigError::UnsupportedDriverType(driver_type));
    }
    for arg in WDM_LINK_ARGS {
        println!("cargo::rustc-cdylib-link-arg={arg}");
    }
    emit_cfg_settings(&driver_type);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(manifest_text: &str) -> Result<String, ConfigError> {
        driver_type_in(manifest_text, Path::new("Cargo.toml"))
    }

    #[test]
    fn reads_the_driver_type_from_package_metadata() {
        let manifest = "[package]\nname = \"x\"\n\n[package.metadata.wdk.driver-model]\ndriver-type = \"WDM\"\n";
        assert_eq!(parse(manifest).unwrap(), "WDM");
    }

    #[test]
    fn a_manifest_without_wdk_metadata_is_reported() {
        let error = parse("[package]\nname = \"x\"\n").unwrap_err();
        assert!(matches!(error, ConfigError::NoWdkConfigurationsDetected(_)), "{error}");
    }

    #[test]
    fn an_unknown_driver_type_is_rejected() {
        let manifest = "[package.metadata.wdk.driver-model]\ndriver-type = \"VXD\"\n";
        let error = parse(manifest).unwrap_err();
        assert_eq!(error.to_string(), "driver-type \"VXD\" is not one of WDM, KMDF, UMDF");
    }

    #[test]
    fn invalid_toml_is_reported() {
        assert!(matches!(parse("[package"), Err(ConfigError::Toml(..))));
    }
}
