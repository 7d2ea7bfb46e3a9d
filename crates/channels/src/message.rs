//! What a notification says, in the user's language and time zone: one alert, a digest of
//! several, or a test. Every channel builds its message from these words, so an alert reads the
//! same in a push, a Telegram chat and an email.

use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::json;
use signal_catalog::Catalog;
use signal_domain::{ConditionKind, ErrorChain, Percent, Timestamp, TriggeredAlert};
use signal_ports::{AlertRecord, Language, UserSettings};
use std::sync::Arc;
use uuid::Uuid;

use crate::template::{Template, TemplateValues};

/// The user's language and time zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Locale {
    pub language: Language,
    pub zone: Tz,
}

impl Locale {
    /// The settings' locale; a time zone that no longer parses falls back to Seoul's.
    pub fn of(settings: &UserSettings) -> Self {
        Self {
            language: settings.language,
            zone: settings.time_zone.parse().unwrap_or(chrono_tz::Asia::Seoul),
        }
    }

    fn pick<T>(&self, ko: T, en: T) -> T {
        match self.language {
            Language::Ko => ko,
            Language::En => en,
        }
    }

    /// `2026-12-02 10:26:16 KST`.
    pub fn time(&self, at: Timestamp) -> String {
        at.with_timezone(&self.zone)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }
}

/// `71900` as `71,900`; decimals keep every digit they have.
pub fn group_thousands(value: Decimal) -> String {
    let text = value.normalize().to_string();
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// How long a notification's snooze actions put its rule to sleep, as the web app's snooze page
/// reads it (`/rules/{id}/snooze?for=1h`).
pub const SNOOZE_CHOICES: [&str; 3] = ["15m", "1h", "1d"];

/// One of a notification's snooze actions: a page of the web app that snoozes the alert's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnoozeLink {
    /// `15m`, `1h` or `1d`.
    pub code: &'static str,
    pub url: String,
}

impl SnoozeLink {
    /// `15분` / `15 min`.
    pub fn label(&self, locale: &Locale) -> &'static str {
        match self.code {
            "15m" => locale.pick("15분", "15 min"),
            "1h" => locale.pick("1시간", "1 hour"),
            _ => locale.pick("1일", "1 day"),
        }
    }
}

/// One alert, with the instrument's name in the user's language.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertNotice {
    pub alert: AlertRecord,
    pub name: String,
}

impl AlertNotice {
    pub fn new(alert: AlertRecord, catalog: &Catalog, language: Language) -> Self {
        let name = catalog
            .get(&alert.instrument)
            .map(|entry| match language {
                Language::Ko if !entry.instrument.korean_name.is_empty() => {
                    entry.instrument.korean_name.clone()
                }
                _ => entry.instrument.english_name.clone(),
            })
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| alert.instrument.symbol().to_string());
        Self { alert, name }
    }

    /// What the rule asked for, e.g. `at or above 71,900`.
    pub fn condition(&self, locale: &Locale) -> String {
        let level = group_thousands(self.alert.level.value());
        let percent = self
            .alert
            .percent
            .map(|p| p.value().normalize().to_string())
            .unwrap_or_default();
        match self.alert.condition {
            ConditionKind::Above => match locale.language {
                Language::Ko => format!("{level} 이상"),
                Language::En => format!("at or above {level}"),
            },
            ConditionKind::Below => match locale.language {
                Language::Ko => format!("{level} 이하"),
                Language::En => format!("at or below {level}"),
            },
            ConditionKind::ChangeUp => match locale.language {
                Language::Ko => format!("전일 대비 {percent}% 상승 ({level})"),
                Language::En => format!("up {percent}% on the previous close ({level})"),
            },
            ConditionKind::ChangeDown => match locale.language {
                Language::Ko => format!("전일 대비 {percent}% 하락 ({level})"),
                Language::En => format!("down {percent}% on the previous close ({level})"),
            },
            ConditionKind::CrossUp => locale.pick(
                format!("{level} 상향 돌파"),
                format!("crossed {level} upward"),
            ),
            ConditionKind::CrossDown => locale.pick(
                format!("{level} 하향 돌파"),
                format!("crossed {level} downward"),
            ),
            ConditionKind::Crossing => {
                locale.pick(format!("{level} 돌파"), format!("crossed {level}"))
            }
            kind => locale.pick(ko_kind(kind), en_kind(kind)).to_string(),
        }
    }

    /// `삼성전자 71,900 이상` / `Samsung Electronics: at or above 71,900`.
    pub fn title(&self, locale: &Locale) -> String {
        let simulated = if self.alert.simulated {
            locale.pick("[모의] ", "[simulated] ")
        } else {
            ""
        };
        match locale.language {
            Language::Ko => format!("{simulated}{} {}", self.name, self.condition(locale)),
            Language::En => format!("{simulated}{}: {}", self.name, self.condition(locale)),
        }
    }

    /// The rule's message, or the price and time when it has none; then the rule's note.
    pub fn body(&self, locale: &Locale) -> String {
        let mut body = match &self.alert.message {
            Some(message) => message.clone(),
            None => {
                let price = group_thousands(self.alert.price.value());
                let time = locale.time(self.alert.exchange_time);
                match locale.language {
                    Language::Ko => format!("체결가 {price} · {time}"),
                    Language::En => format!("Traded at {price} at {time}"),
                }
            }
        };
        if let Some(note) = self.alert.note.as_deref().filter(|n| !n.is_empty()) {
            body.push('\n');
            body.push_str(locale.pick("메모: ", "Note: "));
            body.push_str(note);
        }
        body
    }

    pub fn template_values(&self, locale: &Locale) -> TemplateValues {
        let alert = &self.alert;
        let mut values = TemplateValues::default();
        values
            .set("symbol", alert.instrument.symbol())
            .set("name", self.name.clone())
            .set("instrument", alert.instrument.to_string())
            .set("price", alert.price.to_string())
            .set("level", alert.level.to_string())
            .set("condition", alert.condition.as_str())
            .set(
                "percent",
                alert.percent.map(|p| p.to_string()).unwrap_or_default(),
            )
            .set(
                "time",
                alert.exchange_time.with_timezone(&locale.zone).to_rfc3339(),
            )
            .set("note", alert.note.clone().unwrap_or_default())
            .set("rule_id", alert.rule_id.0.to_string())
            .set("alert_id", alert.id.to_string())
            .set("event_id", alert.event_id.to_string());
        values
    }

    /// The pages that snooze the alert's rule, one per [`SNOOZE_CHOICES`]. They are the web app's:
    /// a person opens one signed in (or signs in first), so a link that leaks or is prefetched
    /// snoozes nothing on its own.
    pub fn snooze_links(&self, app_url: &str) -> Vec<SnoozeLink> {
        let base = app_url.trim_end_matches('/');
        SNOOZE_CHOICES
            .iter()
            .map(|&code| SnoozeLink {
                code,
                url: format!("{base}/rules/{}/snooze?for={code}", self.alert.rule_id),
            })
            .collect()
    }

    /// The alert as JSON, in the field names of the alert API, with the pages that snooze its
    /// rule (`snoozeUrls`, by duration).
    pub fn json(&self, app_url: &str) -> serde_json::Value {
        let alert = &self.alert;
        let snooze: serde_json::Map<String, serde_json::Value> = self
            .snooze_links(app_url)
            .into_iter()
            .map(|link| (link.code.to_string(), link.url.into()))
            .collect();
        json!({
            "id": alert.id,
            "eventId": alert.event_id,
            "ruleId": alert.rule_id.0,
            "instrument": alert.instrument,
            "symbol": alert.instrument.symbol(),
            "name": self.name,
            "condition": alert.condition.as_str(),
            "level": alert.level,
            "percent": alert.percent,
            "price": alert.price,
            "exchangeTime": alert.exchange_time,
            "triggeredAt": alert.triggered_at,
            "note": alert.note,
            "message": alert.message,
            "simulated": alert.simulated,
            "snoozeUrls": snooze,
        })
    }

    /// One line about the alert: the rule's message, or the title when it has none.
    fn headline(&self, locale: &Locale) -> String {
        match &self.alert.message {
            Some(message) => message.clone(),
            None => self.title(locale),
        }
    }
}

/// A rule's message (`{{name}} at {{price}}, {{time}}`), ready to word each of its alerts for the
/// rule's owner: the instrument's name in their language, `{{time}}` in their time zone as
/// [`Locale::time`] writes it (a person reads it; webhook bodies keep RFC 3339 for programs).
pub struct RuleMessage {
    template: Template,
    locale: Locale,
    change_percent: Option<Percent>,
    catalog: Arc<Catalog>,
}

impl RuleMessage {
    /// The message of the rule that raised `event`, for an owner with `settings`; None when the
    /// rule has none. The text was checked when the rule was saved; one that no longer parses
    /// leaves the alert in the standard wording rather than losing it.
    pub fn of(
        event: &TriggeredAlert,
        settings: &UserSettings,
        catalog: Arc<Catalog>,
    ) -> Option<Self> {
        let source = event.message.as_deref()?;
        let template = Template::text(source)
            .inspect_err(|error| {
                tracing::warn!(
                    error = %ErrorChain(error), rule = %event.rule_id,
                    "a rule's message does not parse; its alert is worded the standard way"
                )
            })
            .ok()?;
        Some(Self {
            template,
            locale: Locale::of(settings),
            change_percent: event.change_percent,
            catalog,
        })
    }

    pub fn render(&self, alert: &AlertRecord) -> String {
        let notice = AlertNotice::new(alert.clone(), &self.catalog, self.locale.language);
        let mut values = notice.template_values(&self.locale);
        values.set("time", self.locale.time(alert.exchange_time));
        if let Some(change) = self.change_percent {
            values.set("change_percent", change.to_string());
        }
        self.template.render(&values)
    }
}

/// The Korean name of a condition kind that has no level of its own to show.
fn ko_kind(kind: ConditionKind) -> &'static str {
    match kind {
        ConditionKind::ChannelEnter => "가격 구간 진입",
        ConditionKind::ChannelExit => "가격 구간 이탈",
        ConditionKind::MoveUp => "일정 시간 안에 상승",
        ConditionKind::MoveDown => "일정 시간 안에 하락",
        ConditionKind::VolumeSpike => "거래량 급증",
        ConditionKind::DayVolume => "당일 거래량 도달",
        ConditionKind::MaCrossUp => "이동평균선 상향 돌파",
        ConditionKind::MaCrossDown => "이동평균선 하향 돌파",
        ConditionKind::RsiAbove => "RSI 기준 이상",
        ConditionKind::RsiBelow => "RSI 기준 이하",
        ConditionKind::GoldenCross => "골든 크로스",
        ConditionKind::DeadCross => "데드 크로스",
        other => other.as_str(),
    }
}

/// The English name of a condition kind that has no level of its own to show.
fn en_kind(kind: ConditionKind) -> &'static str {
    match kind {
        ConditionKind::ChannelEnter => "entered its price band",
        ConditionKind::ChannelExit => "left its price band",
        ConditionKind::MoveUp => "rose within its time window",
        ConditionKind::MoveDown => "fell within its time window",
        ConditionKind::VolumeSpike => "volume spike",
        ConditionKind::DayVolume => "day's volume reached",
        ConditionKind::MaCrossUp => "crossed its moving average upward",
        ConditionKind::MaCrossDown => "crossed its moving average downward",
        ConditionKind::RsiAbove => "RSI at or above its level",
        ConditionKind::RsiBelow => "RSI at or below its level",
        ConditionKind::GoldenCross => "golden cross",
        ConditionKind::DeadCross => "dead cross",
        other => other.as_str(),
    }
}

/// What one message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Alert(Box<AlertNotice>),
    /// Several alerts gathered into one message (over the cap, after quiet hours).
    Digest(Vec<AlertNotice>),
    /// The "send test" action.
    Test,
}

/// One message to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Stable across retries: the alert's event id, or the digest's or test's own id.
    pub message_id: Uuid,
    pub locale: Locale,
    pub content: Content,
    /// The web app's address, for links back to it.
    pub app_url: String,
}

impl Notification {
    pub fn title(&self) -> String {
        let locale = &self.locale;
        match &self.content {
            Content::Alert(notice) => notice.title(locale),
            Content::Digest(notices) => match locale.language {
                Language::Ko => format!("가격 알림 {}건", notices.len()),
                Language::En => format!("{} price alerts", notices.len()),
            },
            Content::Test => locale
                .pick("DonTouch Signal 테스트 알림", "DonTouch Signal test")
                .to_string(),
        }
    }

    /// The message's text below its title.
    pub fn body(&self) -> String {
        let locale = &self.locale;
        match &self.content {
            Content::Alert(notice) => notice.body(locale),
            Content::Digest(notices) => notices
                .iter()
                .map(|n| {
                    let price = group_thousands(n.alert.price.value());
                    let time = n
                        .alert
                        .exchange_time
                        .with_timezone(&locale.zone)
                        .format("%H:%M:%S");
                    format!("• {} · {price} · {time}", n.headline(locale))
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Content::Test => locale
                .pick(
                    "이 채널이 작동합니다. 알림이 여기로 전달됩니다.",
                    "This channel works: your alerts will arrive here.",
                )
                .to_string(),
        }
    }

    /// Where a click on the message leads: the instrument's page for one alert, the alert
    /// history otherwise.
    pub fn link(&self) -> String {
        let base = self.app_url.trim_end_matches('/');
        match &self.content {
            Content::Alert(notice) => format!("{base}/i/{}", notice.alert.instrument),
            Content::Digest(_) | Content::Test => format!("{base}/alerts"),
        }
    }

    /// The snooze actions of a message about one alert; a digest or a test has none (its alerts
    /// may come from many rules).
    pub fn snooze_links(&self) -> Vec<SnoozeLink> {
        match &self.content {
            Content::Alert(notice) => notice.snooze_links(&self.app_url),
            Content::Digest(_) | Content::Test => Vec::new(),
        }
    }

    /// The words before the snooze links.
    pub fn snooze_prompt(&self) -> &'static str {
        self.locale.pick("이 규칙 잠시 끄기", "Snooze this rule")
    }

    /// The alerts the message carries.
    pub fn notices(&self) -> &[AlertNotice] {
        match &self.content {
            Content::Alert(notice) => std::slice::from_ref(notice.as_ref()),
            Content::Digest(notices) => notices,
            Content::Test => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn groups_thousands_and_keeps_decimals() {
        assert_eq!(group_thousands(dec!(71900)), "71,900");
        assert_eq!(group_thousands(dec!(161000000)), "161,000,000");
        assert_eq!(group_thousands(dec!(999)), "999");
        assert_eq!(group_thousands(dec!(1234.50)), "1,234.5");
        assert_eq!(group_thousands(dec!(0.000123)), "0.000123");
        assert_eq!(group_thousands(dec!(-1234567)), "-1,234,567");
    }

    #[test]
    fn a_rule_message_is_worded_for_its_owner() {
        let event: TriggeredAlert = serde_json::from_value(json!({
            "eventId": "019ab2c1-4f7e-7c3a-9a51-1d2f3e4a5b6c", "schemaVersion": 2,
            "userId": "alice", "ruleId": 7, "instrument": "KRX:005930", "symbol": "005930",
            "condition": "ABOVE", "level": "71900", "percent": null, "price": "72000",
            "exchangeTime": "2026-12-02T01:26:16Z", "triggeredAt": "2026-12-02T01:26:16Z",
            "note": null, "simulated": false, "changePercent": "-1.25",
            "message": "{{name}} {{price}} ({{change_percent}}%) at {{time}}, alert {{alert_id}}"
        }))
        .unwrap();
        let record = AlertRecord {
            id: 42,
            event_id: event.event_id,
            user: event.user_id.clone(),
            rule_id: event.rule_id,
            instrument: event.instrument.clone(),
            condition: event.condition,
            level: event.level,
            price: event.price,
            exchange_time: event.exchange_time,
            triggered_at: event.triggered_at,
            stored_at: event.triggered_at,
            note: None,
            simulated: false,
            percent: None,
            message: None,
            read_at: None,
            acknowledged_at: None,
        };
        let catalog = Arc::new(Catalog::builtin());
        let seoul = UserSettings::default();
        let message = RuleMessage::of(&event, &seoul, catalog.clone()).unwrap();
        assert_eq!(
            message.render(&record),
            "삼성전자 72000 (-1.25%) at 2026-12-02 10:26:16 KST, alert 42"
        );
        let new_york = UserSettings {
            language: Language::En,
            time_zone: "America/New_York".into(),
            ..UserSettings::default()
        };
        let message = RuleMessage::of(&event, &new_york, catalog.clone()).unwrap();
        assert_eq!(
            message.render(&record),
            "Samsung Electronics 72000 (-1.25%) at 2026-12-01 20:26:16 EST, alert 42"
        );

        let standard = TriggeredAlert {
            message: None,
            ..event
        };
        assert!(RuleMessage::of(&standard, &seoul, catalog).is_none());
    }
}
