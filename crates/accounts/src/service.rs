//! The account use cases.

use signal_domain::{Timestamp, UserId};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::email::Email;
use crate::error::AccountError;
use crate::limits::{SignInLimit, SignInLimits};
use crate::password::{PasswordHasher, PasswordPolicy};
use crate::sessions::{EndedSessions, SessionId};
use crate::store::{AccountStore, EndedSession, NewSession, SessionRecord};

/// The longest user-agent kept with a session.
const USER_AGENT_MAX_CHARS: usize = 200;
/// Expired sessions are kept this long, then deleted.
const EXPIRED_SESSIONS_KEPT: chrono::Duration = chrono::Duration::days(7);

#[derive(Debug, Clone)]
pub struct AccountsConfig {
    pub policy: PasswordPolicy,
    /// How long a session, and so its token, lasts.
    pub session_lifetime: Duration,
    pub sign_in_per_account: SignInLimit,
    pub sign_in_per_address: SignInLimit,
    /// Password hashes computed at once.
    pub hashing_concurrency: usize,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            policy: PasswordPolicy::default(),
            session_lifetime: Duration::from_secs(30 * 24 * 3600),
            sign_in_per_account: SignInLimit {
                attempts: 10,
                window: Duration::from_secs(300),
            },
            sign_in_per_address: SignInLimit {
                attempts: 50,
                window: Duration::from_secs(300),
            },
            hashing_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Who is signing in: their address counts against the limits, their user agent names the
/// session.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: IpAddr,
    pub user_agent: Option<String>,
}

/// A session just started, for the HTTP layer to turn into a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub user: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

pub struct Accounts {
    store: Arc<dyn AccountStore>,
    ended: EndedSessions,
    hasher: PasswordHasher,
    limits: SignInLimits,
    config: AccountsConfig,
}

impl Accounts {
    pub fn new(
        store: Arc<dyn AccountStore>,
        ended: EndedSessions,
        config: AccountsConfig,
    ) -> Result<Self, AccountError> {
        Ok(Self {
            store,
            ended,
            hasher: PasswordHasher::new(config.hashing_concurrency)?,
            limits: SignInLimits::new(config.sign_in_per_account, config.sign_in_per_address),
            config,
        })
    }

    pub fn policy(&self) -> &PasswordPolicy {
        &self.config.policy
    }

    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        client: &Client,
        now: Timestamp,
    ) -> Result<Session, AccountError> {
        let email = Email::parse(email).map_err(AccountError::InvalidEmail)?;
        self.config
            .policy
            .check(password, &personal_words(&email))
            .map_err(|problem| AccountError::WeakPassword {
                field: "password",
                problem,
            })?;
        let hash = self.hasher.hash(password).await?;
        let session = self.new_session(client, now);
        if !self.store.create_account(&email, &hash, &session).await? {
            return Err(AccountError::EmailTaken);
        }
        tracing::info!(account = %email, "account created");
        Ok(self.started(&email, &session))
    }

    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: &Client,
        now: Timestamp,
    ) -> Result<Session, AccountError> {
        let email = Email::parse(email).map_err(AccountError::InvalidEmail)?;
        self.limits
            .attempt(&email, client.address)
            .map_err(|retry_after| {
                tracing::warn!(account = %email, address = %client.address, "sign-in attempts used up");
                AccountError::TooManyAttempts { retry_after }
            })?;
        let stored = self.store.password_hash(&email).await?;
        if !self.hasher.verify(password, stored.as_deref()).await? {
            tracing::info!(account = %email, address = %client.address, "sign-in refused");
            return Err(AccountError::WrongCredentials);
        }
        let session = self.new_session(client, now);
        if !self.store.start_session(&email, &session).await? {
            // Deleted between the two statements.
            return Err(AccountError::WrongCredentials);
        }
        Ok(self.started(&email, &session))
    }

    /// Ends the caller's own session (sign-out). Ending one that already ended is not an error.
    pub async fn sign_out(
        &self,
        user: &UserId,
        session: SessionId,
        now: Timestamp,
    ) -> Result<(), AccountError> {
        let Ok(email) = Email::of_user(user) else {
            return Ok(()); // not an account's session: nothing to end
        };
        if let Some(ended) = self.store.end_session(&email, session, now).await? {
            self.record_ended(&[ended], now).await?;
        }
        Ok(())
    }

    /// Ends one of the account's sessions ("sign out that device").
    pub async fn end_session(
        &self,
        user: &UserId,
        session: SessionId,
        now: Timestamp,
    ) -> Result<(), AccountError> {
        let email = Email::of_user(user).map_err(|_| AccountError::NoSuchSession)?;
        let ended = self
            .store
            .end_session(&email, session, now)
            .await?
            .ok_or(AccountError::NoSuchSession)?;
        self.record_ended(&[ended], now).await
    }

    /// Replaces the password after checking the current one, ends every session of the account
    /// (a stolen password's sessions with them) and starts a new one for the caller.
    pub async fn change_password(
        &self,
        user: &UserId,
        current: &str,
        new: &str,
        client: &Client,
        now: Timestamp,
    ) -> Result<Session, AccountError> {
        let email = Email::of_user(user).map_err(|_| AccountError::NoAccount)?;
        let stored = self
            .store
            .password_hash(&email)
            .await?
            .ok_or(AccountError::NoAccount)?;
        // The current password is a secret like any other: guessing it counts as sign-ins do.
        self.limits
            .attempt(&email, client.address)
            .map_err(|retry_after| AccountError::TooManyAttempts { retry_after })?;
        if !self.hasher.verify(current, Some(&stored)).await? {
            return Err(AccountError::WrongCurrentPassword);
        }
        if current == new {
            return Err(AccountError::SamePassword);
        }
        self.config
            .policy
            .check(new, &personal_words(&email))
            .map_err(|problem| AccountError::WeakPassword {
                field: "newPassword",
                problem,
            })?;
        let hash = self.hasher.hash(new).await?;
        let session = self.new_session(client, now);
        let ended = self
            .store
            .replace_password(&email, &hash, &session, now)
            .await?
            .ok_or(AccountError::NoAccount)?;
        self.record_ended(&ended, now).await?;
        tracing::info!(account = %email, sessions_ended = ended.len(), "password changed");
        Ok(self.started(&email, &session))
    }

    /// The account's active sessions, newest first; empty for a user with no account.
    pub async fn sessions(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, AccountError> {
        match Email::of_user(user) {
            Ok(email) => Ok(self.store.active_sessions(&email, now).await?),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Housekeeping, run every few seconds by one task per instance: writes the ended sessions
    /// back into the shared cache when it was emptied, deletes long-expired sessions and lets the
    /// sign-in limits forget idle keys.
    pub async fn maintain(&self, now: Timestamp) -> Result<(), AccountError> {
        if self
            .ended
            .needs_restoring(self.config.session_lifetime)
            .await?
        {
            let ended = self.store.ended_unexpired_sessions(now).await?;
            self.record_ended(&ended, now).await?;
            tracing::info!(
                count = ended.len(),
                "ended sessions written to the shared cache"
            );
        }
        self.store
            .delete_sessions_expired_before(now - EXPIRED_SESSIONS_KEPT)
            .await?;
        self.limits.forget_idle();
        Ok(())
    }

    fn new_session(&self, client: &Client, now: Timestamp) -> NewSession {
        let lifetime = chrono::Duration::from_std(self.config.session_lifetime)
            .unwrap_or(chrono::Duration::days(30));
        NewSession {
            id: SessionId::random(),
            created_at: now,
            expires_at: now + lifetime,
            user_agent: client
                .user_agent
                .as_deref()
                .map(|agent| agent.chars().take(USER_AGENT_MAX_CHARS).collect()),
        }
    }

    fn started(&self, email: &Email, session: &NewSession) -> Session {
        Session {
            id: session.id,
            user: email.user_id().clone(),
            created_at: session.created_at,
            expires_at: session.expires_at,
        }
    }

    async fn record_ended(
        &self,
        ended: &[EndedSession],
        now: Timestamp,
    ) -> Result<(), AccountError> {
        for session in ended {
            self.ended
                .record(session.id, session.expires_at, now)
                .await?;
        }
        Ok(())
    }
}

/// What a person's password should not be made of: their address and its parts.
fn personal_words(email: &Email) -> Vec<&str> {
    let mut words = vec![email.as_str()];
    if let Some((local, domain)) = email.as_str().split_once('@') {
        words.push(local);
        words.extend(domain.split('.'));
    }
    words
}
