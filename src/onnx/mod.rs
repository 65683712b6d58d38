//! Finding and loading ONNX Runtime (`libonnxruntime.so`), once per process.
//!
//! ort is built with `load-dynamic`: the runtime is a file on disk, taken from
//! the PyPI `onnxruntime` wheel by `scripts/setup.sh`. A missing or wrong
//! library is an error that names the path, never a panic.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};

pub mod proto;
pub mod rewrite;

/// The ONNX Runtime release ort 2.0.0-rc.15 with `api-31` expects.
pub const ORT_VERSION: &str = "1.31.1";

static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
static LOADED_FROM: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The system install (`scripts/build-deb.sh` puts it here).
pub const SYSTEM_PATH: &str = "/usr/lib/gatehouse/libonnxruntime.so";

/// Where to look for the library, in order: `ORT_DYLIB_PATH`, the config's
/// `[models] onnxruntime`, the system install. Loading a library runs its
/// code: a release build never looks in the current directory or beside the
/// binary, where root running the CLI in a writable folder would load
/// whatever lies there. Debug builds (development, `cargo test`) also try the
/// project-local cache that `scripts/setup.sh` fills.
pub fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(env) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(env));
    }
    if let Some(p) = configured {
        out.push(p.to_path_buf());
    }
    out.push(PathBuf::from(SYSTEM_PATH));
    #[cfg(debug_assertions)]
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/gatehouse (or target/debug/deps/<test>) → <repo>/.cache/onnxruntime
        for up in exe.ancestors().skip(1).take(3) {
            out.push(up.join("../.cache/onnxruntime/libonnxruntime.so"));
        }
    }
    out
}

/// Loads ONNX Runtime if it is not loaded yet; returns the path it came from.
pub fn init(configured: Option<&Path>) -> Result<PathBuf> {
    let mut loaded = LOADED_FROM
        .lock()
        .map_err(|_| anyhow::anyhow!("ONNX Runtime loader lock poisoned"))?;
    if let Some(path) = loaded.as_ref() {
        return Ok(path.clone());
    }
    let tried = candidates(configured);
    let Some(path) = tried.iter().find(|p| p.exists()).cloned() else {
        let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "ONNX Runtime library not found; looked at: {}. Run scripts/setup.sh, or set ORT_DYLIB_PATH or [models] onnxruntime",
            list.join(", ")
        );
    };
    let builder = ort::init_from(&path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot load ONNX Runtime from {}", path.display()))?;
    let environment = builder
        .with_name("gatehouse")
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "ONNX Runtime at {} failed to start (expected version {ORT_VERSION})",
                path.display()
            )
        })?;
    let _ = ENVIRONMENT.set(environment);
    *loaded = Some(path.clone());
    Ok(path)
}

/// Opens a model file as an ONNX Runtime session with `threads` intra-op threads.
pub fn session(model: &Path, threads: usize) -> Result<ort::session::Session> {
    let context = || format!("cannot load model {}", model.display());
    builder(threads)
        .with_context(context)?
        .commit_from_file(model)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(context)
}

/// A session for a model held in memory (a rewritten one, `rewrite::apply`);
/// `name` says where it came from in errors.
pub fn session_from_bytes(
    model: &[u8],
    name: &str,
    threads: usize,
) -> Result<ort::session::Session> {
    let context = || format!("cannot load model {name}");
    builder(threads)
        .with_context(context)?
        .commit_from_memory(model)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(context)
}

fn builder(threads: usize) -> Result<ort::session::builder::SessionBuilder> {
    let environment = ENVIRONMENT
        .get()
        .context("ONNX Runtime is not loaded; call onnx::init first")?;
    ort::session::Session::builder(environment)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_intra_threads(threads)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_inter_threads(1)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_looks_in_the_current_directory() {
        let tried = candidates(Some(Path::new("/opt/ort/libonnxruntime.so")));
        assert!(tried.iter().all(|p| p.is_absolute()), "{tried:?}");
        let cwd = std::env::current_dir().unwrap();
        assert!(!tried.contains(&cwd.join("libonnxruntime.so")), "{tried:?}");
        assert!(tried.contains(&PathBuf::from("/opt/ort/libonnxruntime.so")));
        assert!(tried.contains(&PathBuf::from(SYSTEM_PATH)));
        // A release build knows exactly three places.
        #[cfg(not(debug_assertions))]
        assert_eq!(
            tried.len(),
            2 + usize::from(std::env::var_os("ORT_DYLIB_PATH").is_some()),
            "{tried:?}"
        );
    }
}
