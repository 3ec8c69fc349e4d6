//! The configuration of the current generation. httpd reads its
//! configuration twice at start-up and again on every restart, in the same
//! process and without always unloading the module, so nothing may rely on
//! statics being fresh: `pre_config` starts a new builder, the directives fill
//! it, `post_config` freezes it for the requests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::config::{Builder, Config};

static PENDING: Mutex<Option<Builder>> = Mutex::new(None);
static ACTIVE: RwLock<Option<Arc<Config>>> = RwLock::new(None);

/// Starts reading a new configuration.
pub(super) fn begin(server_root: PathBuf, default_ipc_dir: PathBuf) {
    *PENDING.lock().unwrap_or_else(PoisonError::into_inner) =
        Some(Builder::new(server_root, default_ipc_dir));
}

/// Applies one directive to the configuration being read.
pub(super) fn with_builder<T>(
    f: impl FnOnce(&mut Builder) -> Result<T, String>,
) -> Result<T, String> {
    let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    match pending.as_mut() {
        Some(builder) => f(builder),
        None => Err("FastCGI: directive read outside a configuration pass".to_string()),
    }
}

/// Freezes what was read; requests from now on see it.
pub(super) fn commit() -> Arc<Config> {
    let builder = PENDING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let config = Arc::new(match builder {
        Some(b) => b.build(),
        None => Builder::new(PathBuf::from("/"), PathBuf::from("/")).build(),
    });
    *ACTIVE.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&config));
    config
}

/// The configuration requests use.
pub(super) fn active() -> Option<Arc<Config>> {
    ACTIVE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}
