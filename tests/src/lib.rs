//! What the system tests (`tests/system/`, one test executable) share: where the
//! repository is and the `boxoffice` binary they run.
//!
//! The binary is `BOXOFFICE_BIN` when set, otherwise cargo's, asked at run time through
//! `escargot` (`cargo build -p boxoffice --bin boxoffice`, once per test process): a
//! package's integration tests get `CARGO_BIN_EXE_*` only for that package's own
//! binaries, and a binary looked up in the target directory could be missing or older
//! than the sources. Cargo holds no lock while it runs tests, so the nested build does
//! not wait on the `cargo test` that started it; it uses the same target directory
//! (`CARGO_TARGET_DIR`, or the one the workspace's configuration names) and profile, and
//! is a no-op when the binary is fresh.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository's root. Read at run time, not compiled in with `env!`: a target
/// directory reused from a clone at another path keeps the old path in compiled code.
pub fn workspace_dir() -> PathBuf {
    let manifest_dir: PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into);
    manifest_dir
        .parent()
        .expect("the system tests' package sits in the workspace")
        .to_path_buf()
}

/// `config/default.toml`, the configuration the tests start `boxoffice` with.
pub fn default_config() -> PathBuf {
    workspace_dir().join("config/default.toml")
}

/// The `boxoffice` binary under test: `BOXOFFICE_BIN` when set (as for
/// `scripts/browser-test.sh`: e.g. a release build), otherwise the one cargo builds from
/// this checkout, built on the first call. Panics naming the command to run when there is
/// none.
pub fn boxoffice_bin() -> &'static Path {
    static BOXOFFICE_BIN: OnceLock<PathBuf> = OnceLock::new();
    BOXOFFICE_BIN.get_or_init(|| {
        if let Some(binary) = std::env::var_os("BOXOFFICE_BIN").filter(|path| !path.is_empty()) {
            let binary = PathBuf::from(binary);
            assert!(
                binary.is_file(),
                "BOXOFFICE_BIN is {}, which is no file: build it (`cargo build -p boxoffice \
                 --bin boxoffice`) or unset BOXOFFICE_BIN to have the tests build it",
                binary.display()
            );
            return binary;
        }
        let manifest = workspace_dir().join("Cargo.toml");
        match escargot::CargoBuild::new()
            .manifest_path(&manifest)
            .package("boxoffice")
            .bin("boxoffice")
            .current_release()
            .run()
        {
            Ok(run) => run.path().to_path_buf(),
            Err(error) => panic!(
                "the system tests run the `boxoffice` binary, and cargo could not build it \
                 ({error}); run `cargo build -p boxoffice --bin boxoffice` in {} to see why, \
                 or set BOXOFFICE_BIN to a built binary",
                workspace_dir().display()
            ),
        }
    })
}
