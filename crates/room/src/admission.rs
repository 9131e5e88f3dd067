//! Admission: how far down the queue passes have been given, moved on at each tick of the
//! room's controller (one process ticks; every process reads the result).
//!
//! The frontier is kept in exact integer units of 1/60,000 rank (a rank per minute times a
//! millisecond), so a fixed rate admits exactly `per_minute` a minute however the ticks fall,
//! and every process agrees on it. It never runs ahead of the queue: idle time banks no
//! credit, so a burst of late joiners is admitted at the rate, not at once.

use serde::{Deserialize, Serialize};

/// Units of the frontier per rank: a rate in ranks per minute times milliseconds.
pub const UNITS_PER_RANK: u64 = 60_000;
/// The controller's floor and ceiling, in admissions per minute.
pub const RATE_MIN_PER_MINUTE: u32 = 6;
pub const RATE_MAX_PER_MINUTE: u32 = 600_000;

/// How a room admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AdmissionPolicy {
    /// A fixed number of admissions a minute.
    Fixed { per_minute: u32 },
    /// As many as keep the booking p99 under the target, nothing shed, the writer's queue
    /// under half its bound, and the passes in use at most `max_active`.
    Auto { target_p99_ms: u32, max_active: u32 },
}

/// What the ticking process saw since the last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    pub elapsed_ms: u64,
    /// Booking requests' p99 over the interval (`None`: none measured).
    pub booking_p99_ms: Option<u32>,
    /// Requests waiting for the booking writer, and its bound.
    pub writer_queue: u32,
    pub writer_queue_max: u32,
    /// Passes given and neither expired nor returned (a booking done returns its pass).
    pub active_passes: u32,
    /// Requests the process turned away with 503 over the interval (in-flight limit, booking
    /// queue, time limit, storage). A shed request is never timed, so the booking p99 alone
    /// misses an overload that sheds, or one in another route of the admitted applicants'
    /// journey (applications, payments): any shed is a sign to back off.
    pub shed_requests: u32,
}

/// A room's admission state: what the ticking process stores and every process reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    /// Ranks below `frontier / 60,000` are passed: admitted, or skipped.
    pub frontier: u64,
    pub rate_per_minute: u32,
    /// Passed ranks whose ticket was gone when the frontier reached them (expired unpolled,
    /// or queued again under a new number): skipped, so the rate admits live applicants
    /// rather than spending admissions on nobody ([`pass_over`](Self::pass_over)).
    #[serde(default)]
    pub skipped: u64,
    /// How fast the frontier may move, in ranks a minute, whether or not the queue has that
    /// many to admit ([`tick`](Self::tick)): the rate, or under `auto` while the passes in use
    /// bind, what the free passes allowed over the last few ticks (smoothed). ETAs are counted
    /// at this pace.
    #[serde(default)]
    pub pace_per_minute: u32,
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Admitted,
    Waiting {
        /// Tickets ahead (0: next).
        position: u64,
        /// At the current pace.
        eta_seconds: u64,
    },
}

impl Admission {
    /// At the opening: nothing admitted; the fixed rate, or the controller's start (a tenth of
    /// `max_active` a minute, so the first minute cannot flood the writer).
    pub fn opening(policy: &AdmissionPolicy) -> Self {
        let rate = match *policy {
            AdmissionPolicy::Fixed { per_minute } => per_minute,
            AdmissionPolicy::Auto { max_active, .. } => (max_active / 10).max(RATE_MIN_PER_MINUTE),
        };
        let rate = rate.clamp(RATE_MIN_PER_MINUTE, RATE_MAX_PER_MINUTE);
        Self {
            frontier: 0,
            rate_per_minute: rate,
            skipped: 0,
            pace_per_minute: rate,
        }
    }

    /// Ranks the frontier has passed (`0..passed()`): each was admitted or skipped.
    pub fn passed(&self) -> u64 {
        self.frontier / UNITS_PER_RANK
    }

    /// Tickets admitted so far: the ranks passed less those skipped.
    pub fn admitted(&self) -> u64 {
        self.passed().saturating_sub(self.skipped)
    }

    /// The frontier just passed `dead` ranks whose tickets were gone: it moves on by as many
    /// (at most to `queued`) and counts them skipped, so what the rate allowed goes to live
    /// tickets. Returns the ranks newly passed, for the caller to look for gone tickets in
    /// turn (until a call finds none). Expiry is final (an expired ticket never stands
    /// again; its citizen rejoins under a new number), so a skip judged at one tick stays
    /// right: the count is exact, derived from the tickets, with no write per ticket.
    pub fn pass_over(&mut self, dead: u64, queued: u64) -> std::ops::Range<u64> {
        let from = self.passed();
        let end = queued.saturating_mul(UNITS_PER_RANK).max(self.frontier);
        // On by whole ranks (the fraction kept), at most to the queue's end.
        self.frontier = self
            .frontier
            .saturating_add(dead.saturating_mul(UNITS_PER_RANK))
            .min(end);
        // The dead ranks were passed already: skipped whether or not the queue had more.
        self.skipped += dead;
        from..self.passed()
    }

    /// Moves admission on by what `observed` allows; `queued` is how many tickets the queue
    /// holds (the frontier stops there).
    ///
    /// The controller (`auto`) raises its rate only while the rate is what holds the queue
    /// back: once the frontier has caught up with the queue, a higher rate would admit nobody
    /// more now and would only let the next burst in all at once (TCP's rule for an
    /// application-limited sender, RFC 7661).
    pub fn tick(&mut self, policy: &AdmissionPolicy, observed: &Observed, queued: u64) {
        let elapsed = observed.elapsed_ms.min(60_000);
        let end = queued.saturating_mul(UNITS_PER_RANK);
        let mut advance = u64::from(self.rate_per_minute) * elapsed;
        let mut passes_bind = false;
        if let AdmissionPolicy::Auto {
            target_p99_ms,
            max_active,
        } = *policy
        {
            let room = u64::from(max_active.saturating_sub(observed.active_passes));
            let whole = self.frontier % UNITS_PER_RANK;
            // At most `room` more admitted now: the passes in use stay within max_active.
            let by_passes = room * UNITS_PER_RANK - whole.min(room * UNITS_PER_RANK);
            passes_bind = by_passes < advance;
            advance = advance.min(by_passes);
            let slow = observed.booking_p99_ms.is_some_and(|p| p > target_p99_ms)
                || observed.shed_requests > 0;
            let backed_up = observed.writer_queue_max > 0
                && u64::from(observed.writer_queue) * 2 > u64::from(observed.writer_queue_max);
            let queue_limited = self.frontier.saturating_add(advance) >= end;
            let rate = self.rate_per_minute;
            self.rate_per_minute = if slow || backed_up {
                // Multiplicative decrease: back off fast when bookings slow.
                rate - rate * 3 / 10
            } else if observed.active_passes < max_active && !queue_limited {
                // Additive increase while passes are free and the rate holds the queue back.
                rate.saturating_add((rate / 10).max(RATE_MIN_PER_MINUTE))
            } else {
                rate
            }
            .clamp(RATE_MIN_PER_MINUTE, RATE_MAX_PER_MINUTE);
        }
        if !passes_bind {
            // The rate binds: the next tick admits at the rate as it now is.
            self.pace_per_minute = self.rate_per_minute;
        } else if let Some(allowed) = advance.checked_div(elapsed) {
            // The free passes bind, as the returns come: ranks a minute this tick allowed
            // (units per millisecond), smoothed with a quarter weight.
            let allowed = allowed.min(u64::from(RATE_MAX_PER_MINUTE));
            self.pace_per_minute = ((u64::from(self.pace_per_minute) * 3 + allowed) / 4) as u32;
        }
        self.frontier = (self.frontier + advance).min(end.max(self.frontier));
    }

    /// Where the ticket at `rank` stands under `policy`, the controller ticking every
    /// `tick_ms`.
    ///
    /// The ETA is the time the frontier needs to reach the ticket as the controller would move
    /// it if nothing changed: at the pace while that is fixed (a fixed rate, or under `auto`
    /// the free passes binding), and under `auto` while its rate binds, at that rate raised
    /// each tick by the controller's additive step ([`Self::growing_eta_ms`]). Counting at the
    /// current rate alone, a ticket queued behind thousands while the rate grows was told
    /// minutes and admitted in seconds (ETA error p50 523 % in the surge-day room run).
    pub fn standing(&self, policy: &AdmissionPolicy, rank: u64, tick_ms: u64) -> Standing {
        let passed = self.passed();
        if rank < passed {
            return Standing::Admitted;
        }
        let position = rank - passed;
        // Ranks to go until this one is admitted, in frontier units.
        let to_go = (rank + 1) * UNITS_PER_RANK - self.frontier;
        let growing = matches!(policy, AdmissionPolicy::Auto { .. })
            && self.pace_per_minute == self.rate_per_minute;
        let eta_ms = if growing {
            self.growing_eta_ms(to_go, tick_ms.max(1))
        } else {
            // Units per millisecond are ranks per minute.
            to_go.div_ceil(u64::from(self.pace_per_minute.max(RATE_MIN_PER_MINUTE)))
        };
        Standing::Waiting {
            position,
            eta_seconds: eta_ms.div_ceil(1000),
        }
    }

    /// Milliseconds until the frontier has moved `to_go` units if every tick (each `tick_ms`)
    /// advances at the rate and then raises it as [`Self::tick`] does while nothing is slow
    /// and the rate holds the queue back: by a tenth (at least [`RATE_MIN_PER_MINUTE`]) up to
    /// [`RATE_MAX_PER_MINUTE`]. Not projected: a slowdown (the rate cut) and the passes
    /// binding later (then the pace is what the returns allow, and ETAs follow it from the
    /// tick that sees it). Bounded: past [`PROJECTED_TICKS_MAX`] ticks, at the rate reached.
    fn growing_eta_ms(&self, to_go: u64, tick_ms: u64) -> u64 {
        let mut rate = u64::from(self.rate_per_minute.max(RATE_MIN_PER_MINUTE));
        let (mut left, mut ms) = (to_go, 0u64);
        for _ in 0..PROJECTED_TICKS_MAX {
            let step = rate * tick_ms;
            // At the ceiling the rest is linear: counted at once below (polls ask this).
            if step >= left || rate >= u64::from(RATE_MAX_PER_MINUTE) {
                break;
            }
            left -= step;
            ms += tick_ms;
            rate = (rate + (rate / 10).max(u64::from(RATE_MIN_PER_MINUTE)))
                .min(u64::from(RATE_MAX_PER_MINUTE));
        }
        ms + left.div_ceil(rate)
    }
}

/// Ticks an ETA projects the controller's growth over, at most (an hour of 1-second ticks;
/// the rate reaches its ceiling from its floor in about 120, and the projection stops there).
const PROJECTED_TICKS_MAX: u32 = 3_600;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tick(a: &mut Admission, policy: &AdmissionPolicy, ms: u64, queued: u64) {
        a.tick(
            policy,
            &Observed {
                elapsed_ms: ms,
                ..Observed::default()
            },
            queued,
        );
    }

    #[test]
    fn a_fixed_rate_admits_exactly_its_rate_however_the_ticks_fall() {
        let policy = AdmissionPolicy::Fixed { per_minute: 7 };
        let mut a = Admission::opening(&policy);
        let mut total_ms = 0;
        for ms in [1000u64, 333, 1667, 997, 3].iter().cycle().take(150) {
            tick(&mut a, &policy, *ms, 1_000_000);
            total_ms += ms;
        }
        assert_eq!(total_ms, 120_000);
        assert_eq!(a.admitted(), 14);
    }

    #[test]
    fn idle_time_banks_no_credit() {
        let policy = AdmissionPolicy::Fixed { per_minute: 600 };
        let mut a = Admission::opening(&policy);
        for _ in 0..60 {
            tick(&mut a, &policy, 1000, 5);
        }
        assert_eq!(a.admitted(), 5);
        // 1,000 join at once: admitted at 10 a second, not all at once.
        tick(&mut a, &policy, 1000, 1005);
        assert_eq!(a.admitted(), 15);
    }

    #[test]
    fn the_controller_backs_off_when_bookings_slow_and_keeps_passes_bounded() {
        let policy = AdmissionPolicy::Auto {
            target_p99_ms: 250,
            max_active: 100,
        };
        let mut a = Admission::opening(&policy);
        assert_eq!(a.rate_per_minute, 10);
        let calm = Observed {
            elapsed_ms: 1000,
            booking_p99_ms: Some(40),
            active_passes: 0,
            ..Observed::default()
        };
        for _ in 0..50 {
            a.tick(&policy, &calm, 1_000_000);
        }
        let fast = a.rate_per_minute;
        assert!(fast > 100, "{fast}");
        let before = a.admitted();
        a.tick(
            &policy,
            &Observed {
                booking_p99_ms: Some(900),
                ..calm
            },
            1_000_000,
        );
        assert_eq!(a.rate_per_minute, fast - fast * 3 / 10);
        assert!(a.admitted() > before);
        let r = a.rate_per_minute;
        a.tick(
            &policy,
            &Observed {
                writer_queue: 600,
                writer_queue_max: 1000,
                ..calm
            },
            1_000_000,
        );
        assert!(a.rate_per_minute < r);
        // A request shed backs off too, however fast the bookings that got through were.
        let r = a.rate_per_minute;
        a.tick(
            &policy,
            &Observed {
                shed_requests: 1,
                ..calm
            },
            1_000_000,
        );
        assert_eq!(a.rate_per_minute, r - r * 3 / 10);
        // All passes in use: nobody more is admitted, whatever the rate.
        let full = a.admitted();
        a.tick(
            &policy,
            &Observed {
                active_passes: 100,
                ..calm
            },
            1_000_000,
        );
        assert_eq!(a.admitted(), full);
        a.tick(
            &policy,
            &Observed {
                active_passes: 97,
                elapsed_ms: 60_000,
                ..calm
            },
            1_000_000,
        );
        assert_eq!(a.admitted(), full + 3);
    }

    #[test]
    fn etas_are_met_at_a_steady_rate() {
        let policy = AdmissionPolicy::Fixed { per_minute: 120 };
        let mut a = Admission::opening(&policy);
        tick(&mut a, &policy, 2500, 1000);
        assert_eq!(a.admitted(), 5);
        assert_eq!(a.standing(&policy, 4, 1000), Standing::Admitted);
        let Standing::Waiting {
            position,
            eta_seconds,
        } = a.standing(&policy, 40, 1000)
        else {
            panic!()
        };
        assert_eq!(position, 35);
        let mut seconds = 0;
        while a.standing(&policy, 40, 1000) != Standing::Admitted {
            tick(&mut a, &policy, 1000, 1000);
            seconds += 1;
        }
        assert_eq!(seconds, eta_seconds);
    }

    /// While the controller's rate grows (nothing slow, passes free, the queue ahead), the ETA
    /// follows the growth: a ticket far down the queue is admitted when it was told, not at
    /// the starting rate's pace (which would be several times too long).
    #[test]
    fn etas_follow_the_controller_s_growth() {
        let policy = AdmissionPolicy::Auto {
            target_p99_ms: 250,
            max_active: 1_000_000,
        };
        let calm = Observed {
            elapsed_ms: 1000,
            booking_p99_ms: Some(40),
            ..Observed::default()
        };
        for rank in [2_000u64, 10_000, 200_000, 2_000_000] {
            let mut a = Admission::opening(&policy);
            let Standing::Waiting { eta_seconds, .. } = a.standing(&policy, rank, 1000) else {
                panic!("rank {rank} admitted at once")
            };
            let at_start = ((rank + 1) * UNITS_PER_RANK - a.frontier)
                .div_ceil(u64::from(a.rate_per_minute) * 1000);
            let mut seconds = 0;
            while a.standing(&policy, rank, 1000) != Standing::Admitted {
                a.tick(&policy, &calm, 10_000_000);
                seconds += 1;
            }
            assert_eq!(seconds, eta_seconds, "rank {rank}");
            if rank >= 200_000 {
                assert!(
                    at_start > 3 * seconds,
                    "rank {rank}: {at_start} s at the start's rate"
                );
            }
        }
    }

    /// Caught up with the queue, the controller holds its rate: a quiet minute does not let
    /// the next burst in at once.
    #[test]
    fn the_controller_does_not_raise_a_rate_the_queue_does_not_use() {
        let policy = AdmissionPolicy::Auto {
            target_p99_ms: 250,
            max_active: 10_000,
        };
        let mut a = Admission::opening(&policy);
        let start = a.rate_per_minute;
        let calm = Observed {
            elapsed_ms: 1000,
            booking_p99_ms: Some(40),
            ..Observed::default()
        };
        // Three joins a second, fewer than the rate admits: the queue is drained each tick.
        for second in 1..=120 {
            a.tick(&policy, &calm, 3 * second);
            assert_eq!(a.admitted(), 3 * second);
        }
        assert_eq!(a.rate_per_minute, start);
        // A burst: now the rate holds the queue back, and it rises.
        a.tick(&policy, &calm, 100_000);
        assert!(a.rate_per_minute > start);
    }

    /// With every pass in use but a few returned each tick, admissions follow the returns,
    /// not the rate, and the ETA is counted at that pace.
    #[test]
    fn etas_follow_the_pace_the_free_passes_allow() {
        let policy = AdmissionPolicy::Auto {
            target_p99_ms: 250,
            max_active: 100,
        };
        let mut a = Admission {
            frontier: 0,
            rate_per_minute: 60_000,
            skipped: 0,
            pace_per_minute: 60_000,
        };
        // Two passes free a second: 120 a minute, whatever the rate.
        let tight = Observed {
            elapsed_ms: 1000,
            booking_p99_ms: Some(40),
            active_passes: 98,
            ..Observed::default()
        };
        for _ in 0..40 {
            a.tick(&policy, &tight, 1_000_000);
        }
        assert_eq!(a.admitted(), 80);
        assert!(
            (115..=125).contains(&a.pace_per_minute),
            "{}",
            a.pace_per_minute
        );
        let Standing::Waiting { eta_seconds, .. } = a.standing(&policy, 80 + 119, 1000) else {
            panic!()
        };
        assert!((58..=63).contains(&eta_seconds), "{eta_seconds}");
    }

    /// Half the queue gone: passing over the gone ranks admits the rate's worth of live
    /// tickets, and the count admitted leaves the skipped out.
    #[test]
    fn gone_ranks_are_passed_over_and_the_rate_admits_live_tickets() {
        let policy = AdmissionPolicy::Fixed { per_minute: 60 };
        let mut a = Admission::opening(&policy);
        let gone = |rank: u64| rank % 2 == 1;
        let queued = 100;
        for _ in 0..10 {
            let from = a.passed();
            tick(&mut a, &policy, 1000, queued);
            let mut range = from..a.passed();
            loop {
                let dead = range.clone().filter(|&r| gone(r)).count() as u64;
                if dead == 0 {
                    break;
                }
                range = a.pass_over(dead, queued);
            }
        }
        // Ranks 0, 2, …, 18 admitted; 1, 3, …, 17 skipped; 19 not reached yet.
        assert_eq!(a.admitted(), 10);
        assert_eq!(a.skipped, 9);
        assert_eq!(a.passed(), 19);
        // At the queue's end the frontier stops; the ranks found gone still count skipped.
        let r = a.pass_over(5, 22);
        assert_eq!((r, a.passed(), a.skipped), (19..22, 22, 14));
        assert_eq!(a.admitted(), 8);
    }

    proptest! {
        #[test]
        fn admission_only_moves_forward_and_within_the_queue(
            steps in prop::collection::vec((0u64..5000, prop::option::of(0u32..800), 0u32..120, 0u64..10_000), 1..80),
            fixed in prop::option::of(1u32..5000),
        ) {
            let policy = match fixed {
                Some(per_minute) => AdmissionPolicy::Fixed { per_minute },
                None => AdmissionPolicy::Auto { target_p99_ms: 250, max_active: 100 },
            };
            let mut a = Admission::opening(&policy);
            let mut queued = 0;
            for (ms, p99, active, joins) in steps {
                queued += joins;
                let before = a.admitted();
                a.tick(&policy, &Observed { elapsed_ms: ms, booking_p99_ms: p99, active_passes: active, ..Observed::default() }, queued);
                prop_assert!(a.admitted() >= before);
                prop_assert!(a.admitted() <= queued);
                prop_assert!((RATE_MIN_PER_MINUTE..=RATE_MAX_PER_MINUTE).contains(&a.rate_per_minute));
                if fixed.is_none() {
                    prop_assert!(a.admitted() - before <= u64::from(100u32.saturating_sub(active)));
                }
            }
        }
    }
}
