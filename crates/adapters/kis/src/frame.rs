//! Reads what the KIS WebSocket sends: `|`-delimited data frames carrying one or more trade
//! records, possibly AES-encrypted, and JSON control messages (subscription answers, PINGPONG).
//! Pure: no I/O, so it is tested on the real frames and fuzzed; a frame it cannot read is an
//! error for the caller to count, never a panic.

use crate::venue::{instrument_of, DOMESTIC, OVERSEAS};
use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::Engine;
use serde::Deserialize;
use signal_domain::{Tick, Timestamp};
use std::collections::HashMap;
use std::fmt::Debug;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("field {field} is missing")]
    MissingField { field: String },
    #[error("field {field} has an unreadable value `{value}`")]
    BadField { field: String, value: String },
}

impl FrameError {
    pub(crate) fn missing(field: impl Debug) -> Self {
        Self::MissingField {
            field: format!("{field:?}"),
        }
    }

    pub(crate) fn field(field: impl Debug, value: &str) -> Self {
        Self::BadField {
            field: format!("{field:?}"),
            value: value.chars().take(40).collect(),
        }
    }

    fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed(reason.into())
    }
}

/// One message from the socket, understood.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decoded {
    Ticks(Vec<Tick>),
    Control(Control),
}

/// The JSON messages that steer the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// The server's keepalive; it drops sessions that do not answer it.
    PingPong,
    Subscribed {
        tr_id: String,
        tr_key: String,
    },
    Unsubscribed {
        tr_id: String,
        tr_key: String,
    },
    /// OPSP0002: harmless, the registration stands.
    AlreadySubscribed {
        tr_id: String,
        tr_key: String,
    },
    /// OPSP0008: this session holds as many registrations as KIS allows.
    LimitReached {
        tr_id: String,
        tr_key: String,
    },
    /// Anything else refused (rt_cd "9" JSON PARSING ERROR, unknown codes).
    Rejected {
        tr_id: String,
        tr_key: String,
        code: String,
        message: String,
    },
}

#[derive(Deserialize)]
struct ControlMessage {
    header: ControlHeader,
    body: Option<ControlBody>,
}

#[derive(Deserialize)]
struct ControlHeader {
    tr_id: String,
    #[serde(default)]
    tr_key: String,
}

#[derive(Deserialize)]
struct ControlBody {
    rt_cd: String,
    #[serde(default)]
    msg_cd: String,
    #[serde(default)]
    msg1: String,
    output: Option<CipherMaterial>,
}

#[derive(Deserialize)]
struct CipherMaterial {
    key: String,
    iv: String,
}

struct Cipher {
    key: [u8; 32],
    iv: [u8; 16],
}

/// Decodes messages of one session. It remembers the AES key and IV each TR's subscription
/// answer carried, which later encrypted frames of that TR need.
#[derive(Default)]
pub(crate) struct Decoder {
    ciphers: HashMap<String, Cipher>,
}

impl Decoder {
    pub fn decode(&mut self, text: &str, received_at: Timestamp) -> Result<Decoded, FrameError> {
        match text.as_bytes().first() {
            Some(b'0' | b'1') => self.data(text, received_at).map(Decoded::Ticks),
            Some(b'{') => self.control(text).map(Decoded::Control),
            _ => Err(FrameError::malformed("neither a data frame nor JSON")),
        }
    }

    fn data(&self, text: &str, received_at: Timestamp) -> Result<Vec<Tick>, FrameError> {
        let mut parts = text.splitn(4, '|');
        let (Some(encryption), Some(tr_id), Some(count), Some(payload)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(FrameError::malformed("expected enc|tr_id|count|payload"));
        };
        let venue = [&DOMESTIC, &OVERSEAS]
            .into_iter()
            .find(|venue| venue.stream_tr_id == tr_id)
            .ok_or_else(|| FrameError::malformed(format!("unexpected TR `{tr_id}`")))?;
        let count: usize = count
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| FrameError::field("count", count))?;
        let plain;
        let payload = match encryption {
            "0" => payload,
            "1" => {
                plain = self.decrypt(tr_id, payload)?;
                plain.as_str()
            }
            other => return Err(FrameError::field("encryption", other)),
        };
        // Records are concatenated with the same '^' that separates fields, and empty fields are
        // meaningful, so the only way to split records is by the TR's field count.
        let values: Vec<&str> = payload.split('^').collect();
        if values.len() != count * venue.record_fields {
            return Err(FrameError::malformed(format!(
                "{count} record(s) of {tr_id} need {} values, got {}",
                count * venue.record_fields,
                values.len()
            )));
        }
        values
            .chunks(venue.record_fields)
            .map(|record| {
                let instrument = instrument_of(tr_id, record[0])
                    .ok_or_else(|| FrameError::field("tr_key", record[0]))?;
                venue
                    .record
                    .tick(instrument, |at| record.get(at).copied(), received_at)
            })
            .collect()
    }

    fn decrypt(&self, tr_id: &str, payload: &str) -> Result<String, FrameError> {
        let cipher = self
            .ciphers
            .get(tr_id)
            .ok_or_else(|| FrameError::malformed(format!("encrypted {tr_id} before its key")))?;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map_err(|_| FrameError::malformed("encrypted payload is not base64"))?;
        let opened = Aes256CbcDec::new(&cipher.key.into(), &cipher.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&sealed)
            .map_err(|_| FrameError::malformed("encrypted payload does not decrypt"))?;
        String::from_utf8(opened)
            .map_err(|_| FrameError::malformed("decrypted payload is not UTF-8"))
    }

    fn control(&mut self, text: &str) -> Result<Control, FrameError> {
        let message: ControlMessage = serde_json::from_str(text)
            .map_err(|e| FrameError::malformed(format!("control message: {e}")))?;
        let ControlHeader { tr_id, tr_key } = message.header;
        if tr_id == "PINGPONG" {
            return Ok(Control::PingPong);
        }
        let body = message
            .body
            .ok_or_else(|| FrameError::malformed(format!("{tr_id} answer without a body")))?;
        Ok(match (body.rt_cd.as_str(), body.msg_cd.as_str()) {
            ("0", "OPSP0001") => Control::Unsubscribed { tr_id, tr_key },
            ("0", _) if body.msg1.starts_with("UNSUB") => Control::Unsubscribed { tr_id, tr_key },
            ("0", _) => {
                if let Some(material) = body.output {
                    self.remember_cipher(&tr_id, material)?;
                }
                Control::Subscribed { tr_id, tr_key }
            }
            (_, "OPSP0002") => Control::AlreadySubscribed { tr_id, tr_key },
            (_, "OPSP0008") => Control::LimitReached { tr_id, tr_key },
            (rt_cd, msg_cd) => Control::Rejected {
                tr_id,
                tr_key,
                code: if msg_cd.is_empty() { rt_cd } else { msg_cd }.to_string(),
                message: body.msg1,
            },
        })
    }

    fn remember_cipher(&mut self, tr_id: &str, material: CipherMaterial) -> Result<(), FrameError> {
        let key = material
            .key
            .as_bytes()
            .try_into()
            .map_err(|_| FrameError::field("output.key", "(not 32 bytes)"))?;
        let iv = material
            .iv
            .as_bytes()
            .try_into()
            .map_err(|_| FrameError::field("output.iv", "(not 16 bytes)"))?;
        self.ciphers.insert(tr_id.to_string(), Cipher { key, iv });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use rust_decimal_macros::dec;
    use signal_domain::{Price, QuoteSource};

    const DOMESTIC_FRAME: &str = "0|H0STCNT0|001|005930^112616^62700^2^400^0.64^62700.41^62700^63000^62300^62700^62600^125^9694968^607878273600^25807^15918^-9889^93.01^4614191^4291558^1^0.45^63.03^090013^3^0^090646^5^-300^100741^2^400^20230324^20^N^71292^244009^2795345^2044512^0.16^5367918^180.61^0^^62700";
    const OVERSEAS_FRAME: &str = "0|HDFSCNT0|001|DNASAAPL^AAPL^4^20230502^20230502^091913^20230502^221913^169.9200^170.1000^169.4200^169.8000^2^0.2100^+0.12^169.7700^169.7900^201^2^3^108470^18415181^24757^20519^82.88^1";
    const ACK: &str = r#"{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},"body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS","output":{"iv":"55ce3d099479ce11","key":"tvldhmfplvgcovaqrspclzhdotfzzequ"}}}"#;

    fn received() -> Timestamp {
        Utc.with_ymd_and_hms(2023, 5, 2, 13, 19, 14).unwrap()
    }

    fn ticks(decoder: &mut Decoder, text: &str) -> Vec<Tick> {
        match decoder.decode(text, received()).unwrap() {
            Decoded::Ticks(ticks) => ticks,
            other => panic!("expected ticks, got {other:?}"),
        }
    }

    #[test]
    fn a_real_domestic_trade_becomes_an_exact_tick() {
        let tick = ticks(&mut Decoder::default(), DOMESTIC_FRAME).remove(0);
        assert_eq!(tick.instrument, "KRX:005930".parse().unwrap());
        assert_eq!(tick.price, Price::new(dec!(62700)).unwrap());
        assert_eq!(tick.prev_close, Some(Price::new(dec!(62300)).unwrap()));
        assert_eq!(tick.trade_volume, Some(dec!(125)));
        assert_eq!(tick.cumulative_volume, Some(dec!(9694968)));
        assert_eq!(
            tick.exchange_time,
            Utc.with_ymd_and_hms(2023, 3, 24, 2, 26, 16).unwrap()
        );
        assert_eq!(tick.source, QuoteSource::Kis);
    }

    #[test]
    fn a_real_overseas_trade_becomes_an_exact_tick() {
        let tick = ticks(&mut Decoder::default(), OVERSEAS_FRAME).remove(0);
        assert_eq!(tick.instrument, "NASDAQ:AAPL".parse().unwrap());
        assert_eq!(tick.price.value(), dec!(169.8));
        assert_eq!(tick.prev_close.unwrap().value(), dec!(169.59));
        assert_eq!(tick.trade_volume, Some(dec!(3)));
        assert_eq!(tick.cumulative_volume, Some(dec!(108470)));
        assert_eq!(
            tick.exchange_time,
            Utc.with_ymd_and_hms(2023, 5, 2, 13, 19, 13).unwrap()
        );
    }

    #[test]
    fn a_falling_overseas_sign_subtracts_the_unsigned_change() {
        let falling = OVERSEAS_FRAME.replace("^2^0.2100^+0.12^", "^5^0.2100^-0.12^");
        let tick = ticks(&mut Decoder::default(), &falling).remove(0);
        assert_eq!(tick.prev_close.unwrap().value(), dec!(170.01));
    }

    #[test]
    fn records_of_a_multi_record_frame_are_split_by_field_count() {
        let record = OVERSEAS_FRAME.split('|').nth(3).unwrap();
        let frame = format!("0|HDFSCNT0|003|{record}^{record}^{record}");
        assert_eq!(ticks(&mut Decoder::default(), &frame).len(), 3);
        let short = format!("0|HDFSCNT0|003|{record}^{record}");
        assert!(Decoder::default().decode(&short, received()).is_err());
    }

    #[test]
    fn an_encrypted_frame_is_opened_with_the_key_from_its_ack() {
        let mut decoder = Decoder::default();
        assert_eq!(
            decoder.decode(ACK, received()).unwrap(),
            Decoded::Control(Control::Subscribed {
                tr_id: "H0STCNT0".into(),
                tr_key: "005930".into()
            })
        );
        let record = DOMESTIC_FRAME.split('|').nth(3).unwrap();
        let sealed = cbc::Encryptor::<aes::Aes256>::new(
            b"tvldhmfplvgcovaqrspclzhdotfzzequ".into(),
            b"55ce3d099479ce11".into(),
        )
        .encrypt_padded_vec_mut::<Pkcs7>(record.as_bytes());
        let frame = format!(
            "1|H0STCNT0|001|{}",
            base64::engine::general_purpose::STANDARD.encode(sealed)
        );
        assert_eq!(ticks(&mut decoder, &frame)[0].price.value(), dec!(62700));
        assert!(Decoder::default().decode(&frame, received()).is_err());
    }

    #[test]
    fn control_messages_are_classified() {
        let mut decoder = Decoder::default();
        let control = |d: &mut Decoder, text: &str| match d.decode(text, received()).unwrap() {
            Decoded::Control(c) => c,
            other => panic!("expected control, got {other:?}"),
        };
        assert_eq!(
            control(
                &mut decoder,
                r#"{"header":{"tr_id":"PINGPONG","datetime":"20230502221924"}}"#
            ),
            Control::PingPong
        );
        assert!(matches!(
            control(
                &mut decoder,
                r#"{"header":{"tr_id":"H0STCNT0","tr_key":"005930"},"body":{"rt_cd":"1","msg_cd":"OPSP0002","msg1":"ALREADY IN SUBSCRIBE"}}"#
            ),
            Control::AlreadySubscribed { .. }
        ));
        assert!(matches!(
            control(
                &mut decoder,
                r#"{"header":{"tr_id":"H0STASP0","tr_key":"000660"},"body":{"rt_cd":"1","msg_cd":"OPSP0008","msg1":"MAX SUBSCRIBE OVER"}}"#
            ),
            Control::LimitReached { .. }
        ));
        assert!(matches!(
            control(
                &mut decoder,
                r#"{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},"body":{"rt_cd":"0","msg_cd":"OPSP0001","msg1":"UNSUBSCRIBE SUCCESS"}}"#
            ),
            Control::Unsubscribed { .. }
        ));
        assert!(matches!(
            control(&mut decoder, r#"{"header":{"tr_id":"H0STCNT0","tr_key":""},"body":{"rt_cd":"9","msg_cd":"","msg1":"JSON PARSING ERROR : invalid tr_key"}}"#),
            Control::Rejected { code, .. } if code == "9"
        ));
        assert!(matches!(
            control(
                &mut decoder,
                r#"{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},"body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS"}}"#
            ),
            Control::Subscribed { .. }
        ));
    }

    #[test]
    fn damaged_frames_are_errors() {
        let mut decoder = Decoder::default();
        for text in [
            "",
            "0|H0STCNT0|001",
            "0|H0STCNT0|abc|x",
            "0|H0STCNT0|000|",
            "0|H0STASP0|001|x",
            "2|H0STCNT0|001|x",
            "{not json",
            &DOMESTIC_FRAME.replace("^62700^2^", "^-5^2^"),
            &DOMESTIC_FRAME.replace("^20230324^", "^2023XX24^"),
        ] {
            assert!(decoder.decode(text, received()).is_err(), "{text}");
        }
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in ".{0,300}") {
            let _ = Decoder::default().decode(&text, received());
        }

        #[test]
        fn mutated_real_frames_never_panic(
            which in 0usize..2,
            at in 0usize..400,
            cut in 0usize..400,
            insert in "[0-9^|.+-]{0,4}",
        ) {
            let frame = [DOMESTIC_FRAME, OVERSEAS_FRAME][which];
            let mut chars: Vec<char> = frame.chars().collect();
            let at = at.min(chars.len());
            let cut = cut.min(chars.len() - at).min(3);
            chars.splice(at..at + cut, insert.chars());
            let text: String = chars.into_iter().collect();
            let _ = Decoder::default().decode(&text, received());
        }
    }
}
