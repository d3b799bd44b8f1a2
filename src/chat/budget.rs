//! The replica's budget of buffered bytes: what every call holds of an answer
//! that is not yet on the wire — a partly received upstream event (the
//! framer's buffer) and a folded answer (Invoke, StreamEvents, non-streaming
//! models). Calls reserve as their buffers grow; a call that would take the
//! replica over the budget fails with RESOURCE_EXHAUSTED instead of taking the
//! memory, so the worst case is the budget, whatever the callers and
//! upstreams do. Lock-free: one atomic add per growth step.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use crate::error::{Error, Kind};

/// Shared by every call of a replica (cheap to clone).
#[derive(Clone, Debug)]
pub struct Budget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    used: AtomicUsize,
    /// 0: unlimited.
    limit: usize,
}

impl Default for Budget {
    /// An unlimited budget (tests, tools).
    fn default() -> Self {
        Self::new(0)
    }
}

impl Budget {
    /// A budget of `limit` bytes (0: unlimited).
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(Inner {
            used: AtomicUsize::new(0),
            limit,
        }))
    }

    /// Bytes held by all calls now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// A call's share, empty to start with; released when dropped.
    pub fn reserve(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// What one buffer of one call holds of the budget.
#[derive(Debug)]
pub struct Reservation {
    budget: Budget,
    held: usize,
}

impl Reservation {
    /// Holds `bytes` in all from now on (more or less than before). Growing
    /// past the budget fails and keeps what was held.
    pub fn set(&mut self, bytes: usize) -> Result<(), Error> {
        let inner = &self.budget.0;
        if bytes <= self.held {
            inner.used.fetch_sub(self.held - bytes, Ordering::Relaxed);
            self.held = bytes;
            return Ok(());
        }
        let more = bytes - self.held;
        let before = inner.used.fetch_add(more, Ordering::Relaxed);
        if inner.limit > 0 && before.saturating_add(more) > inner.limit {
            inner.used.fetch_sub(more, Ordering::Relaxed);
            return Err(Error::new(
                Kind::ResourceExhausted,
                "MEMORY_BUDGET_EXCEEDED",
                format!(
                    "this server's calls already hold close to its {}-byte budget of buffered answers (max_buffered_bytes); retry later or on another replica",
                    inner.limit
                ),
            ));
        }
        self.held = bytes;
        Ok(())
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_it_back() {
        let b = Budget::new(100);
        let mut r1 = b.reserve();
        let mut r2 = b.reserve();
        assert!(r1.set(60).is_ok());
        let e = r2.set(50).err().map(|e| e.reason);
        assert_eq!(e, Some("MEMORY_BUDGET_EXCEEDED"));
        assert_eq!((b.used(), r2.held()), (60, 0));
        assert!(r1.set(10).is_ok());
        assert!(r2.set(90).is_ok());
        drop(r1);
        drop(r2);
        assert_eq!(b.used(), 0);
        let mut unlimited = Budget::default().reserve();
        assert!(unlimited.set(usize::MAX / 2).is_ok());
    }
}
