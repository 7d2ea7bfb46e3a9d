//! The email address an account signs in with. It is also the account's user id (the `sub` of
//! its tokens), as the original system identified users by email.

use email_address::{EmailAddress, Options};
use signal_domain::UserId;
use std::fmt;

/// A syntactically valid address, trimmed and lower-cased: `Alice@Example.com` and
/// `alice@example.com` are one account. (The local part is case-sensitive in theory; no mail
/// provider people use treats it so, and two accounts differing only in case would be a trap.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(UserId);

/// Why a text is not an email address an account can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("enter your email address")]
    Empty,
    #[error("an email address has at most 254 bytes")]
    TooLong,
    #[error("enter an email address like name@example.com")]
    Malformed,
}

/// RFC 5321's limit on a forward path (in octets), which every address must fit in.
const MAX_LENGTH: usize = 254;

impl Email {
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(EmailError::Empty);
        }
        if text.len() > MAX_LENGTH {
            return Err(EmailError::TooLong);
        }
        // A bare address only: no `Name <addr>` display form, no `[127.0.0.1]` domains.
        let options = Options::default()
            .without_display_text()
            .without_domain_literal();
        EmailAddress::parse_with_options(text, options).map_err(|_| EmailError::Malformed)?;
        let user = UserId::new(text.to_lowercase()).map_err(|_| EmailError::Malformed)?;
        Ok(Self(user))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The user id an account's data hangs from.
    pub fn user_id(&self) -> &UserId {
        &self.0
    }

    /// The account of a user id, when that id is an email address.
    pub fn of_user(user: &UserId) -> Result<Self, EmailError> {
        Self::parse(user.as_str())
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
        assert_eq!(email.user_id().as_str(), "alice@example.com");
    }

    #[test]
    fn refuses_what_is_not_a_bare_address() {
        assert_eq!(Email::parse(" "), Err(EmailError::Empty));
        for text in [
            "alice",
            "alice@",
            "@example.com",
            "Alice <alice@example.com>",
            "alice@[127.0.0.1]",
            "al ice@example.com",
        ] {
            assert_eq!(Email::parse(text), Err(EmailError::Malformed), "{text}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }
}
