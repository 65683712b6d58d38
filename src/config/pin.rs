//! A Raspberry Pi GPIO pin number (BCM numbering), checked where it is read.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// BCM GPIO number on the 40-pin header: 0..=27.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GpioPin(pub u8);

impl GpioPin {
    pub const MAX: u8 = 27;
}

impl fmt::Display for GpioPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GPIO{}", self.0)
    }
}

impl Serialize for GpioPin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for GpioPin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PinVisitor;
        impl Visitor<'_> for PinVisitor {
            type Value = GpioPin;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an integer 0..={}", GpioPin::MAX)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GpioPin, E> {
                if (0..=i64::from(GpioPin::MAX)).contains(&v) {
                    Ok(GpioPin(v as u8))
                } else {
                    Err(E::custom(format!(
                        "expected an integer 0..={}, got {v}",
                        GpioPin::MAX
                    )))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GpioPin, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GpioPin, E> {
                Err(E::custom(format!(
                    "expected an integer 0..={}, got {v:?}",
                    GpioPin::MAX
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<GpioPin, E> {
                Err(E::custom(format!(
                    "expected an integer 0..={}, got {v}",
                    GpioPin::MAX
                )))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<GpioPin, E> {
                Err(E::custom(format!(
                    "expected an integer 0..={}, got {v}",
                    GpioPin::MAX
                )))
            }
        }
        d.deserialize_any(PinVisitor)
    }
}
