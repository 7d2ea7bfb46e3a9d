//! Who is connected: every open alert socket, by user. A user may have several devices; each gets
//! every alert. A session that cannot keep up is closed rather than fed without bound: its alerts
//! stay unacknowledged in history and are replayed when it reconnects.

use signal_domain::UserId;
use signal_ports::AlertRecord;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

const SESSION_QUEUE: usize = 256;

type Sessions = HashMap<UserId, HashMap<u64, mpsc::Sender<Arc<AlertRecord>>>>;

#[derive(Default)]
pub struct SessionHub {
    sessions: Mutex<Sessions>,
    next_id: AtomicU64,
}

/// A registered session; it unregisters itself when dropped.
pub struct SessionHandle {
    hub: Arc<SessionHub>,
    user: UserId,
    id: u64,
    pub alerts: mpsc::Receiver<Arc<AlertRecord>>,
}

impl SessionHub {
    pub fn register(self: &Arc<Self>, user: &UserId) -> SessionHandle {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(user.clone()).or_default().insert(id, tx);
        SessionHandle {
            hub: self.clone(),
            user: user.clone(),
            id,
            alerts: rx,
        }
    }

    /// Hands the alert to every session of its user; returns how many took it.
    pub fn push(&self, record: Arc<AlertRecord>) -> usize {
        let mut sessions = self.lock();
        let Some(user_sessions) = sessions.get_mut(&record.user) else {
            return 0;
        };
        let mut delivered = 0;
        user_sessions.retain(|id, tx| match tx.try_send(record.clone()) {
            Ok(()) => {
                delivered += 1;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(user = %record.user, session = id, "alert session too slow; closing it");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if user_sessions.is_empty() {
            sessions.remove(&record.user);
        }
        delivered
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        let mut sessions = self.hub.lock();
        if let Some(user_sessions) = sessions.get_mut(&self.user) {
            user_sessions.remove(&self.id);
            if user_sessions.is_empty() {
                sessions.remove(&self.user);
            }
        }
    }
}
