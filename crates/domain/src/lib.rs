//! The vocabulary of DonTouch Signal: markets, instruments, exact prices, quotes, alert rules and the
//! triggered-alert event. Pure data and rules about data; nothing here performs I/O, so every adapter
//! and service agrees on one meaning for each value.

pub mod bar;
pub mod calendar;
pub mod event;
pub mod failure;
pub mod instrument;
pub mod market;
pub mod params;
pub mod price;
pub mod quote;
pub mod rule;
pub mod template;
pub mod text;
pub mod user;

pub use bar::{Bar, Interval, UnknownInterval};
pub use calendar::{CalendarConfig, Exchange, MarketCalendar, SessionHours, SessionState};
pub use event::{
    firing_id, AlsoCondition, QuoteChanged, TriggeredAlert, QUOTE_CHANGED_SCHEMA_VERSION,
    TRIGGERED_ALERT_SCHEMA_V1, TRIGGERED_ALERT_SCHEMA_VERSION,
};
pub use failure::{ErrorChain, Failure, FailureKind};
pub use instrument::{Instrument, InstrumentId, InstrumentIdError};
pub use market::{AssetClass, Market};
pub use params::{AverageParams, ConditionParams, ConjunctParams};
pub use price::{DecimalInput, Percent, Price, PriceError};
pub use quote::{Quote, QuoteSource, Tick};
pub use rule::{
    check_repeat, rsi_history_wanted, snooze_end, AlertRule, Average, AverageKind, ChannelEdge,
    Condition, ConditionKind, Conjunct, Crossing, Direction, MoveSize, Problem, Repeat, RuleError,
    RuleId, RuleSpec, RuleState, MAX_MESSAGE_CHARS, MAX_SNOOZE_DAYS,
};
pub use text::abbreviate;
pub use user::{UserId, UserIdError};

/// Wall-clock instants everywhere in the system are UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
