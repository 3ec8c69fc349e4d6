//! The configuration of the current generation. httpd reads its
//! configuration twice at start-up and again on every restart, in the same
//! process and without always unloading the module, so nothing may rely on
//! statics being fresh: `pre_config` starts a new builder, the directives fill
//! it, `post_config` freezes it for the requests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::config::{Builder, Config, Host};

static PENDING: Mutex<Option<Builder>> = Mutex::new(None);
static ACTIVE: RwLock<Option<Arc<Config>>> = RwLock::new(None);

/// Starts reading a new configuration.
pub(super) fn begin(server_root: PathBuf, default_ipc_dir: PathBuf) {
    let builder = Builder::new(server_root, default_ipc_dir, Box::new(SystemHost));
    *PENDING.lock().unwrap_or_else(PoisonError::into_inner) = Some(builder);
}

/// The machine as the configuration sees it.
struct SystemHost;

impl Host for SystemHost {
    fn check_executable(&self, path: &str) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("stat({path}) failed: {e}"))?;
        if meta.is_dir() {
            return Err("is a directory".into());
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("is not executable".into());
        }
        Ok(())
    }

    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Applies one directive to the configuration being read.
pub(super) fn with_builder<T>(f: impl FnOnce(&mut Builder) -> Result<T, String>) -> Result<T, String> {
    let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    match pending.as_mut() {
        Some(builder) => f(builder),
        None => Err("FastCGI: directive read outside a configuration pass".to_string()),
    }
}

/// Freezes what was read, with the warnings to log; requests from now on
/// see it.
pub(super) fn commit() -> (Arc<Config>, Vec<String>) {
    let builder = PENDING.lock().unwrap_or_else(PoisonError::into_inner).take();
    let (config, warnings) = match builder {
        Some(mut b) => {
            let warnings = b.take_warnings();
            (b.build(), warnings)
        }
        None => {
            let empty = Config { scoreboard: None, ..Config::new(PathBuf::from("/")) };
            (empty, Vec::new())
        }
    };
    let config = Arc::new(config);
    *ACTIVE.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&config));
    (config, warnings)
}

/// The configuration requests use.
pub(super) fn active() -> Option<Arc<Config>> {
    ACTIVE.read().unwrap_or_else(PoisonError::into_inner).clone()
}
