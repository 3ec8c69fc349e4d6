//! Which endpoints failed to accept a connection lately, per Apache child:
//! a server with several endpoints (failover) tries the healthy ones first.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::transport::Endpoint;

/// How long an endpoint that refused a connection is tried last.
const DOWN_FOR: Duration = Duration::from_secs(10);

static DOWN: Mutex<Option<HashMap<Endpoint, Instant>>> = Mutex::new(None);

/// `endpoints` in the order to try them: the healthy ones first, each group
/// in configuration order.
pub fn order(endpoints: &[&Endpoint]) -> Vec<usize> {
    let down = DOWN.lock().unwrap_or_else(PoisonError::into_inner);
    let is_down = |e: &Endpoint| down.as_ref().and_then(|m| m.get(e)).is_some_and(|since| since.elapsed() < DOWN_FOR);
    let (mut up, down): (Vec<usize>, Vec<usize>) = (0..endpoints.len()).partition(|&i| !is_down(endpoints[i]));
    up.extend(down);
    up
}

/// Whether `endpoint` failed lately (in this child).
pub fn is_down(endpoint: &Endpoint) -> bool {
    let down = DOWN.lock().unwrap_or_else(PoisonError::into_inner);
    down.as_ref().and_then(|m| m.get(endpoint)).is_some_and(|since| since.elapsed() < DOWN_FOR)
}

/// Records a failed connect to `endpoint`.
pub fn mark_down(endpoint: &Endpoint) {
    let mut down = DOWN.lock().unwrap_or_else(PoisonError::into_inner);
    down.get_or_insert_with(HashMap::new).insert(endpoint.clone(), Instant::now());
}

/// Records a successful connect to `endpoint`.
pub fn mark_up(endpoint: &Endpoint) {
    let mut down = DOWN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(map) = down.as_mut() {
        map.remove(endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_endpoints_go_last_until_they_recover() {
        let a = Endpoint::Unix("/health-test/a".into());
        let b = Endpoint::Unix("/health-test/b".into());
        assert_eq!(order(&[&a, &b]), [0, 1]);
        mark_down(&a);
        assert_eq!(order(&[&a, &b]), [1, 0]);
        mark_up(&a);
        assert_eq!(order(&[&a, &b]), [0, 1]);
    }
}
