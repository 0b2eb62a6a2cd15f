//! Linux stand-in for Microsoft's `wdk-build` 0.6.0.
//!
//! The crates.io `wdk-build` depends on the `windows` crate, which does not
//! compile on a Linux host, and it looks for an installed WDK. The Linux build
//! of TestDriver replaces it (through a cargo patch that only the Linux build
//! applies) with this crate, which offers the part of the API that `wdk`,
//! `wdk-alloc`, `wdk-panic`, `wdk-sys` and the driver's own `build.rs` call:
//!
//! * [`configure_wdk_library_build`]: emits the `driver_model__driver_type`
//!   cfg (and its `check-cfg`), read from the top-level `Cargo.toml`'s
//!   `[package.metadata.wdk.driver-model]` table, as the real one does
//!   (`wdk-panic` 0.5.0's build script calls only this: without the WDM cfg
//!   it would build as a `std` crate with no panic handler);
//! * [`configure_wdk_binary_build`]: the same cfg plus the linker arguments the
//!   real crate emits for a WDM driver (`/DRIVER`, `/SUBSYSTEM:NATIVE`,
//!   `/ENTRY:DriverEntry`, `/INTEGRITYCHECK`, `/MAP`, ...), after the same
//!   `crt-static` check;
//! * [`find_top_level_cargo_manifest`] and [`ConfigError`].
//!
//! The base libraries the real crate links (`ntoskrnl`, `hal`, `wmilib`,
//! `BufferOverflowFastFailK`) come with the WDK. Here only `ntoskrnl` is
//! linked, from an import library that the stand-in `wdk-sys` generates.

use std::{
    env, fmt,
    path::{Path, PathBuf},
};

/// The cfg key `wdk-build` exports for the driver model, and its allowed values.
const DRIVER_TYPE_CFG_KEY: &str = "driver_model__driver_type";
const DRIVER_TYPES: [&str; 3] = ["WDM", "KMDF", "UMDF"];

/// Linker arguments the real `wdk-build` 0.6.0 emits for a WDM driver
/// (`Config::configure_binary_build`), in the same order.
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
    /// `OUT_DIR`, `CARGO_CFG_TARGET_FEATURE` or another variable cargo sets
    /// for build scripts is missing: not called from a build script.
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

/// Returns the `Cargo.toml` beside the first `Cargo.lock` found in the
/// ancestors of `OUT_DIR`, as the real `wdk-build` does.
///
/// # Errors
///
/// [`ConfigError::NotInBuildScript`] outside a build script,
/// [`ConfigError::TopLevelManifestNotFound`] when no ancestor holds a
/// `Cargo.lock`.
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
/// I/O and TOML errors, [`ConfigError::NoWdkConfigurationsDetected`] when the
/// table is missing, [`ConfigError::UnknownDriverType`] for a value other than
/// WDM, KMDF or UMDF.
pub fn driver_type_of(manifest: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|error| ConfigError::Io(manifest.to_path_buf(), error))?;
    driver_type_in(&text).map_err(|error| match error {
        ConfigError::Toml(_, message) => ConfigError::Toml(manifest.to_path_buf(), message),
        ConfigError::NoWdkConfigurationsDetected(_) => {
            ConfigError::NoWdkConfigurationsDetected(manifest.to_path_buf())
        }
        other => other,
    })
}

fn driver_type_in(manifest_text: &str) -> Result<String, ConfigError> {
    let table = toml::de::DeTable::parse(manifest_text)
        .map_err(|error| ConfigError::Toml(PathBuf::new(), error.to_string()))?;
    let mut value = table.get_ref().get("package").map(toml::Spanned::get_ref);
    for key in ["metadata", "wdk", "driver-model", "driver-type"] {
        value = value.and_then(|v| v.get(key)).map(toml::Spanned::get_ref);
    }
    let driver_type = value
        .and_then(toml::de::DeValue::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::NoWdkConfigurationsDetected(PathBuf::new()))?;
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

/// Configures the build of a library that depends on the WDK: emits the
/// driver-model cfg. A build graph without a WDK configuration only gets the
/// `check-cfg` settings, as with the real crate.
///
/// # Errors
///
/// Errors other than a missing WDK configuration.
pub fn configure_wdk_library_build() -> Result<(), ConfigError> {
    match top_level_driver_type() {
        Ok(driver_type) => {
            emit_cfg_settings(&driver_type);
            Ok(())
        }
        Err(ConfigError::NoWdkConfigurationsDetected(_)) => {
            emit_check_cfg_settings();
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Configures the build of a WDM driver binary: checks that the C runtime is
/// statically linked, emits the linker arguments of a WDM driver and the
/// driver-model cfg.
///
/// # Errors
///
/// A missing or non-WDM driver configuration, or a dynamically linked C
/// runtime.
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

    #[test]
    fn reads_the_driver_type_from_package_metadata() {
        let manifest = "[package]\nname = \"x\"\n\n[package.metadata.wdk.driver-model]\ndriver-type = \"WDM\"\n";
        assert_eq!(driver_type_in(manifest).unwrap(), "WDM");
    }

    #[test]
    fn a_manifest_without_wdk_metadata_is_reported() {
        let error = driver_type_in("[package]\nname = \"x\"\n").unwrap_err();
        assert!(matches!(error, ConfigError::NoWdkConfigurationsDetected(_)), "{error}");
    }

    #[test]
    fn an_unknown_driver_type_is_rejected() {
        let manifest = "[package.metadata.wdk.driver-model]\ndriver-type = \"VXD\"\n";
        let error = driver_type_in(manifest).unwrap_err();
        assert_eq!(error.to_string(), "driver-type \"VXD\" is not one of WDM, KMDF, UMDF");
    }

    #[test]
    fn invalid_toml_is_reported() {
        assert!(matches!(driver_type_in("[package"), Err(ConfigError::Toml(..))));
    }
}
