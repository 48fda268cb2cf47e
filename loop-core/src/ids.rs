//! Identifiers and positions in the log.
//!
//! Run and step ids are UUIDv7: they sort by creation time, which keeps listings and the SQLite
//! index in insertion order. Generating one needs a clock and entropy, so this crate only builds
//! them from parts; callers at the edge bring the time and the randomness.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(
            feature = "openapi",
            derive(utoipa::ToSchema),
            schema(value_type = String, format = "uuid")
        )]
        pub struct $name(Uuid);

        impl $name {
            /// A UUIDv7 from a Unix time in milliseconds and 10 bytes of entropy.
            pub fn from_parts(unix_ms: u64, entropy: [u8; 10]) -> Self {
                Self(uuid::Builder::from_unix_timestamp_millis(unix_ms, &entropy).into_uuid())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Names one run for its whole life.
    RunId
);
uuid_id!(
    /// Names one step (an implementation, review or verification attempt) of a run.
    StepId
);

/// The global, gap-free position of an event in the log, starting at 1.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Seq(pub u64);

/// How many events a run has: the version of its first event is 1. An append states the version
/// it expects the run to be at, which is how concurrent writers detect each other.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Version(pub u64);

impl Version {
    /// The version of a run that has no events yet.
    pub const NONE: Version = Version(0);

    pub const fn next(self) -> Version {
        Version(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
