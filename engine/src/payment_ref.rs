//! [`PaymentRef`]: a booking's payment reference, inline up to [`PAYMENT_REF_INLINE`]
//! bytes.
//!
//! Perf: a reference was an `Arc<str>` shared by the booking and every view of it, so a
//! confirm allocated it and put a locked increment of its count on the engine thread
//! (for the reply's view), where the processor waits for the stores before it (the
//! booking's, the seats'): a fifth of `Engine::execute`'s own samples in the standard
//! mix (session 38), and the outcome's drop took it down again. A short reference (the
//! mix's, and many gateways' ids) is now copied, as a short seat list is (`seat_list`);
//! a longer one is shared as before.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// How many bytes a reference keeps inline: as many as fit beside its length in the 24
/// bytes the enum takes anyway.
pub const PAYMENT_REF_INLINE: usize = 22;

/// A booking's payment reference as the confirmation gave it: inline when short, shared
/// (a reference count, not a copy per view) when longer. Encodes exactly like a
/// `String`, and compares, hashes and prints like the text.
#[derive(Clone)]
pub struct PaymentRef(Repr);

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]` is the text (UTF-8: copied from a `str`).
    Inline {
        len: u8,
        bytes: [u8; PAYMENT_REF_INLINE],
    },
    Shared(Arc<str>),
}

impl PaymentRef {
    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("an inline reference is copied from a str"),
            Repr::Shared(text) => text,
        }
    }
}

impl std::ops::Deref for PaymentRef {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for PaymentRef {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for PaymentRef {
    #[inline]
    fn from(text: &str) -> PaymentRef {
        if text.len() <= PAYMENT_REF_INLINE {
            let mut bytes = [0; PAYMENT_REF_INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            PaymentRef(Repr::Inline {
                len: text.len() as u8,
                bytes,
            })
        } else {
            PaymentRef(Repr::Shared(Arc::from(text)))
        }
    }
}

impl From<String> for PaymentRef {
    fn from(text: String) -> PaymentRef {
        if text.len() <= PAYMENT_REF_INLINE {
            PaymentRef::from(text.as_str())
        } else {
            PaymentRef(Repr::Shared(Arc::from(text)))
        }
    }
}

impl From<Arc<str>> for PaymentRef {
    fn from(text: Arc<str>) -> PaymentRef {
        if text.len() <= PAYMENT_REF_INLINE {
            PaymentRef::from(&*text)
        } else {
            PaymentRef(Repr::Shared(text))
        }
    }
}

impl PartialEq for PaymentRef {
    fn eq(&self, other: &PaymentRef) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for PaymentRef {}

impl PartialEq<str> for PaymentRef {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for PaymentRef {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::hash::Hash for PaymentRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for PaymentRef {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(formatter)
    }
}

impl std::fmt::Display for PaymentRef {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(formatter)
    }
}

impl Serialize for PaymentRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_str().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PaymentRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PaymentRef, D::Error> {
        String::deserialize(deserializer).map(PaymentRef::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length from empty to past the inline bytes, and text of several bytes a
    /// character: the same text, the same bytes as a `String` (the wire, the snapshots
    /// and the outcomes did not change), the same `Debug` form as the `Arc<str>` it
    /// replaced, and back.
    #[test]
    fn a_reference_keeps_its_text_and_encodes_like_a_string_inline_or_shared() {
        let config = bincode::config::standard();
        let mut texts: Vec<String> = (0..=PAYMENT_REF_INLINE + 3)
            .map(|len| "p".repeat(len))
            .collect();
        texts.push("pay_é".repeat(5));
        texts.push("€€€€€€€".into());
        for text in &texts {
            let shared: Arc<str> = Arc::from(text.as_str());
            let references = [
                PaymentRef::from(text.as_str()),
                PaymentRef::from(text.clone()),
                PaymentRef::from(shared.clone()),
            ];
            for reference in &references {
                assert_eq!(reference.as_str(), text);
                assert_eq!(
                    matches!(reference.0, Repr::Inline { .. }),
                    text.len() <= PAYMENT_REF_INLINE
                );
                assert_eq!(format!("{reference:?}"), format!("{shared:?}"));
                assert_eq!(format!("{reference}"), *text);
                let bytes = bincode::serde::encode_to_vec(reference, config).expect("encodes");
                assert_eq!(
                    bytes,
                    bincode::serde::encode_to_vec(text, config).expect("encodes")
                );
                let (back, _): (PaymentRef, usize) =
                    bincode::serde::decode_from_slice(&bytes, config).expect("decodes");
                assert_eq!(&back, reference);
                assert_eq!(
                    serde_json::to_string(reference).expect("encodes"),
                    serde_json::to_string(text).expect("encodes")
                );
            }
        }
    }

    #[test]
    fn a_reference_takes_no_more_room_than_a_seat_list() {
        assert_eq!(std::mem::size_of::<PaymentRef>(), 24);
    }
}
