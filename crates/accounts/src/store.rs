//! The accounts' store port: accounts and their sessions, in the Alert Service's database.

use async_trait::async_trait;
use signal_domain::Timestamp;
use signal_ports::StoreError;

use crate::email::Email;
use crate::sessions::SessionId;

/// A session to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    pub id: SessionId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The browser or client that signed in, as it describes itself (shortened), so a person can
    /// tell their sessions apart.
    pub user_agent: Option<String>,
}

/// An active session, as its owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub user_agent: Option<String>,
}

/// A session ended before it expired: its token must be refused until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndedSession {
    pub id: SessionId,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates the account with its first session, in one transaction; false (and nothing
    /// stored) when an account has this email.
    async fn create_account(
        &self,
        email: &Email,
        password_hash: &str,
        session: &NewSession,
    ) -> Result<bool, StoreError>;
    /// The account's password hash; None when no account has this email.
    async fn password_hash(&self, email: &Email) -> Result<Option<String>, StoreError>;
    /// Starts a session of an existing account; false when there is no such account.
    async fn start_session(&self, email: &Email, session: &NewSession) -> Result<bool, StoreError>;
    /// Ends the session when it is one of `email`'s and still active; returns it then.
    async fn end_session(
        &self,
        email: &Email,
        id: SessionId,
        at: Timestamp,
    ) -> Result<Option<EndedSession>, StoreError>;
    /// In one transaction: replaces the password hash, ends every active session of the account
    /// and starts `session`. Returns the sessions it ended; `None` when there is no such account.
    async fn replace_password(
        &self,
        email: &Email,
        password_hash: &str,
        session: &NewSession,
        at: Timestamp,
    ) -> Result<Option<Vec<EndedSession>>, StoreError>;
    /// The account's sessions that are neither ended nor expired at `at`, newest first.
    async fn active_sessions(
        &self,
        email: &Email,
        at: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError>;
    /// Every session ended early whose token has not expired at `at`.
    async fn ended_unexpired_sessions(
        &self,
        at: Timestamp,
    ) -> Result<Vec<EndedSession>, StoreError>;
    /// Deletes the sessions that expired before `before`; returns how many.
    async fn delete_sessions_expired_before(&self, before: Timestamp) -> Result<u64, StoreError>;
}
