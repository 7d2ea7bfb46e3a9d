//! Built-in accounts: a person signs up with an email and a password, signs in, signs out and
//! changes the password. Passwords are hashed with argon2id and checked against a policy (a
//! minimum length and an estimate of how guessable they are). Each sign-in starts a server-side
//! session; the HTTP layer turns it into the JWT both services verify, carrying the session's id,
//! so a session that ends (sign-out, password change, "sign out that device") can be refused
//! before its token expires: ended sessions are recorded in the shared cache every instance of
//! both services reads ([`EndedSessions`]). Sign-in attempts are limited per account and per
//! client address.
//!
//! Transport-free: the store is a port ([`AccountStore`]), implemented in the SQL adapter.

mod email;
mod error;
mod limits;
mod password;
mod service;
mod sessions;
mod store;

pub use email::{Email, EmailError};
pub use error::AccountError;
pub use limits::{SignInLimit, SignInLimits};
pub use password::{HashingError, PasswordHasher, PasswordPolicy, PasswordProblem};
pub use service::{Accounts, AccountsConfig, Client, Session};
pub use sessions::{EndedSessions, SessionId, SessionIdError};
pub use store::{AccountStore, EndedSession, NewSession, SessionRecord};
