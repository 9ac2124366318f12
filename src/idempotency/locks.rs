//! KeyLocks: requests with the same key wait for each other in memory, not on a database connection.
//!
//! Within one server this lines up duplicates before they touch the database, so that a storm of retries of one
//! key holds no pooled connections; across servers the unique key row does the same job.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

type Slot = Arc<tokio::sync::Mutex<()>>;

/// One lock per (account, key) that is in use.
#[derive(Debug, Default)]
pub struct KeyLocks {
    slots: Mutex<HashMap<(Uuid, String), Slot>>,
}

/// Held while a request with the key runs; the next request with the key proceeds when it drops.
pub struct KeyGuard {
    guard: Option<OwnedMutexGuard<()>>,
    locks: Arc<KeyLocks>,
    id: (Uuid, String),
}

impl KeyLocks {
    /// Waits at most `timeout` until no other request of this server holds the key.
    pub async fn acquire(
        self: &Arc<Self>,
        account_id: Uuid,
        key: &str,
        timeout: Duration,
    ) -> Option<KeyGuard> {
        let id = (account_id, key.to_owned());
        let slot = self.lock_map().entry(id.clone()).or_default().clone();
        let guard = tokio::time::timeout(timeout, slot.lock_owned()).await.ok();
        let guard = KeyGuard {
            guard,
            locks: Arc::clone(self),
            id,
        };
        // On a timeout the guard is dropped here, which also tidies up the slot.
        guard.guard.is_some().then_some(guard)
    }

    /// How many keys are held or waited for.
    pub fn len(&self) -> usize {
        self.lock_map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock_map(&self) -> std::sync::MutexGuard<'_, HashMap<(Uuid, String), Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = self.locks.lock_map();
        // Only the map's own reference left: nobody holds or waits for the key.
        if slots
            .get(&self.id)
            .is_some_and(|slot| Arc::strong_count(slot) == 1)
        {
            slots.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_and_the_map_empties() {
        let locks = Arc::new(KeyLocks::default());
        let account = Uuid::now_v7();
        let first = locks
            .acquire(account, "k", Duration::from_secs(1))
            .await
            .unwrap();
        assert!(
            locks
                .acquire(account, "k", Duration::from_millis(50))
                .await
                .is_none()
        );
        let other_key = locks
            .acquire(account, "other", Duration::from_millis(50))
            .await;
        assert!(other_key.is_some(), "other keys do not wait");
        drop(other_key);
        let waiter = tokio::spawn({
            let locks = Arc::clone(&locks);
            async move {
                locks
                    .acquire(account, "k", Duration::from_secs(5))
                    .await
                    .is_some()
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(waiter.await.unwrap());
        assert!(locks.is_empty());
    }
}
