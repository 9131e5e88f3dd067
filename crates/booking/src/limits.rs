//! The limits that traders hit: reschedules per appointment and a citizen's own cancellations
//! in a rolling window. They are inputs of the decision (`BatchState::limits`, filled in by the
//! writer from its configuration), never read from the environment, and are checked against the
//! rows the batch read (the decider's caps in `state`): an appointment's `reschedules` count,
//! and the citizen's cancellations in the window (`BatchState::recent_cancellations`).

use serde::{Deserialize, Serialize};

use crate::outcome::Refusal;
use crate::rows::UnixSeconds;

/// Seconds in a day, for the cancellation window.
const DAY: UnixSeconds = 86_400;

/// The caps on what an applicant may do to their own appointments. Staff and admin changes
/// (a relocation after a closure, a cancellation for want of a seat) count toward neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most reschedules an applicant may make of one appointment.
    pub max_reschedules: u32,
    /// Most appointments a citizen may cancel within `cancellation_window_days`.
    pub max_cancellations: u32,
    /// The rolling window of `max_cancellations`, in days ending at the batch's time.
    pub cancellation_window_days: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_reschedules: 2,
            max_cancellations: 3,
            cancellation_window_days: 30,
        }
    }
}

impl Limits {
    /// Cancellations made strictly after this time count toward the cap at `now`: one made
    /// exactly `cancellation_window_days` ago has rolled out.
    pub fn cancellations_counted_after(&self, now: UnixSeconds) -> UnixSeconds {
        now - i64::from(self.cancellation_window_days) * DAY
    }

    /// An appointment its applicant has moved `done` times may be moved once more.
    pub(crate) fn check_reschedule(&self, done: i64) -> Result<(), Refusal> {
        if done >= i64::from(self.max_reschedules) {
            return Err(Refusal::RescheduleLimitReached {
                limit: self.max_reschedules,
            });
        }
        Ok(())
    }

    /// A citizen who has cancelled `made` appointments within the window may cancel once more.
    pub(crate) fn check_cancellation(&self, made: u32) -> Result<(), Refusal> {
        if made >= self.max_cancellations {
            return Err(Refusal::CancellationLimitReached {
                limit: self.max_cancellations,
                window_days: self.cancellation_window_days,
            });
        }
        Ok(())
    }
}
