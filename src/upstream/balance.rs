//! Which endpoint a request goes to (`-balance`), in what order the others
//! are tried when it cannot be reached, and the shared health that decides
//! it (issue 12). The state lives in the scoreboard (`metrics::balance`):
//! every child sees the same in-flight counts and the same down endpoints.
//! Without a scoreboard each child balances and tracks health alone.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::config::{Balance, Server};
use crate::metrics::{now_ms, Slot, Tracker, SLOW_START_MS};
use crate::transport::Endpoint;

/// One endpoint to try, with its place among the server's endpoint slots.
pub struct Candidate<'s> {
    pub order: usize,
    pub endpoint: Cow<'s, Endpoint>,
    /// Its scoreboard slot (None without a scoreboard).
    pub slot: Option<usize>,
    /// A down endpoint tried again after its back-off.
    pub retry: bool,
    /// It was down when chosen (a retry, or the last resort): an answer
    /// on this connection brings it back. An answer on a connection made
    /// before it went down does not.
    pub was_down: bool,
}

/// Without a scoreboard: this child's turn counter.
static TURN: AtomicUsize = AtomicUsize::new(0);

/// Whether `server` is balanced: several endpoints, or names the process
/// manager re-resolves. A lone fixed endpoint keeps the plain path.
pub fn balanced(server: &Server, metrics: Option<&Tracker>) -> bool {
    if !server.fallbacks.is_empty() {
        return true;
    }
    metrics.and_then(Tracker::board_slot).is_some_and(|(b, slot)| b.endpoint_range(slot).1 > 1)
}

/// The endpoints of `server` in the order to try them: the one the policy
/// picks first, then the other healthy ones, then those marked down (a
/// down endpoint whose back-off passed is tried first, by one request in
/// all children, unless `-health-check` brings endpoints back). `advance`
/// moves the turn on (false: only looking, for the pool).
pub fn candidates<'s>(server: &'s Server, metrics: Option<&Tracker>, advance: bool) -> Vec<Candidate<'s>> {
    let configured: Vec<&Endpoint> = server.endpoints().collect();
    let Some((board, app)) = metrics.and_then(Tracker::board_slot) else {
        // Per child: health::order puts recent failures last.
        let mut order = super::health::order(&configured);
        if server.options.balance != Balance::Failover && configured.len() > 1 {
            let turn = if advance { TURN.fetch_add(1, Relaxed) } else { TURN.load(Relaxed) };
            let healthy = order.iter().take_while(|&&i| !super::health::is_down(configured[i])).count().max(1);
            order[..healthy].rotate_left(turn % healthy);
        }
        return order
            .into_iter()
            .map(|i| Candidate {
                order: i,
                endpoint: Cow::Borrowed(configured[i]),
                slot: None,
                retry: false,
                was_down: false,
            })
            .collect();
    };
    let (first, _) = board.endpoint_range(app);
    let mut slots: Vec<Slot> = Vec::with_capacity(configured.len().max(4));
    board.active_endpoints(app, &mut slots);
    let now = now_ms();
    let (mut probe, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for s in slots {
        if s.down {
            // With -health-check the manager brings back what it can
            // reach; one that connects but stays silent needs a request.
            let by_request = server.options.health_check == 0
                || board.down_reason(first + s.order) == crate::metrics::layout::endpoint::DOWN_SILENT;
            // Only a request about to connect claims the try (not a look
            // into the pool).
            if by_request && advance && board.claim_retry(first + s.order, s.retry_at, now) {
                probe.push(s);
            } else {
                down.push(s);
            }
        } else {
            up.push(s);
        }
    }
    let n = up.len();
    if n > 1 {
        let turn = if advance { board.next_turn(app) } else { board.turn(app) } as usize;
        // Slow start: an endpoint back for t ms counts t/SLOW_START_MS of
        // a whole one (at least a tenth).
        let weight = |s: &Slot| {
            let since = now.saturating_sub(s.up_at);
            if s.up_at == 0 || since >= SLOW_START_MS {
                1000
            } else {
                (since * 1000 / SLOW_START_MS).max(100)
            }
        };
        match server.options.balance {
            Balance::Failover => {}
            Balance::RoundRobin => {
                up.rotate_left(turn % n);
                // One still starting gives its turn away in proportion.
                if weight(&up[0]) < 1000 && (turn as u64 * 7919) % 1000 >= weight(&up[0]) {
                    up.rotate_left(1);
                }
            }
            Balance::LeastBusy => {
                // One still starting competes in a share of the turns that
                // grows with its weight, and sits out the others.
                let lot = (turn as u64).wrapping_mul(7919) % 1000;
                let rank = |i: usize, s: &Slot| {
                    // Counts a request apart are even (the counts race
                    // between children anyway): those go round.
                    let busy = if weight(s) < 1000 && lot >= weight(s) { u64::MAX } else { s.in_flight.div_ceil(2) };
                    (busy, (i + n - turn % n) % n)
                };
                let mut ranked: Vec<(usize, Slot)> = up.into_iter().enumerate().collect();
                ranked.sort_by_key(|(i, s)| rank(*i, s));
                up = ranked.into_iter().map(|(_, s)| s).collect();
            }
        }
    }
    let probes = probe.len();
    probe
        .into_iter()
        .chain(up)
        .chain(down)
        .enumerate()
        .filter_map(|(k, s)| {
            let endpoint = match s.addr {
                Some(addr) => Cow::Owned(Endpoint::at(addr)),
                None => Cow::Borrowed(*configured.get(s.order)?),
            };
            Some(Candidate {
                order: s.order,
                endpoint,
                slot: Some(first + s.order),
                retry: k < probes,
                was_down: s.down,
            })
        })
        .collect()
}
