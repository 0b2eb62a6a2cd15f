//! Configures the WDM driver build (linker arguments, driver-model cfg) from
//! `[package.metadata.wdk.driver-model]`, as windows-drivers-rs drivers do.

fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_binary_build()
}
