//! An account's spending caps per UTC day and month (`account_budget_usd_per_day` and
//! `_per_month`), against what its calls cost as the log says.

use super::AccountState;

/// Year × 12 + month of a Unix time in milliseconds, in UTC (civil-from-days).
pub(super) fn month_of(ts_ms: i64) -> i64 {
    let days = ts_ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    year * 12 + month - 1
}

/// An account's spending caps, as a run's configuration gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Budget {
    pub per_day_usd: Option<f64>,
    pub per_month_usd: Option<f64>,
}

/// A cap the account has reached, and when the period it counts ends.
#[derive(Clone, Debug, PartialEq)]
pub struct OverBudget {
    /// `day` or `month` (UTC).
    pub period: &'static str,
    pub spent_usd: f64,
    pub cap_usd: f64,
    pub until_ms: i64,
}

impl OverBudget {
    pub fn reason(&self, account: &str) -> String {
        format!(
            "account budget: {account} spent ${:.2} this {} (UTC), its cap is ${:.2} \
             (account_budget_usd_per_{})",
            self.spent_usd, self.period, self.cap_usd, self.period
        )
    }
}

/// The cap `state` has reached at `now_ms`, if any: what was spent counts only in the day or
/// month it was spent in.
pub fn over_budget(state: &AccountState, budget: Budget, now_ms: i64) -> Option<OverBudget> {
    let today = now_ms.div_euclid(86_400_000);
    let month = month_of(now_ms);
    if let Some(cap) = budget.per_day_usd
        && state.day == today
        && state.spent_day_usd >= cap
    {
        return Some(OverBudget {
            period: "day",
            spent_usd: state.spent_day_usd,
            cap_usd: cap,
            until_ms: (today + 1) * 86_400_000,
        });
    }
    if let Some(cap) = budget.per_month_usd
        && state.month == month
        && state.spent_month_usd >= cap
    {
        return Some(OverBudget {
            period: "month",
            spent_usd: state.spent_month_usd,
            cap_usd: cap,
            until_ms: month_start_ms(month + 1),
        });
    }
    None
}

/// The first millisecond of a month numbered as [`month_of`] numbers them (days-from-civil).
fn month_start_ms(month: i64) -> i64 {
    let year = month.div_euclid(12);
    let m = month.rem_euclid(12) + 1;
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_stops_at_its_cap_until_the_next_day_or_month() {
        // 2026-01-31T23:59:59Z and 2026-02-01T00:00:00Z.
        assert_eq!(
            month_start_ms(month_of(1_769_903_999_000) + 1),
            1_769_904_000_000
        );
        assert_eq!(month_start_ms(month_of(0)), 0);
        let noon = 1_769_860_800_000; // 2026-01-31T12:00:00Z
        let mut state = AccountState::default();
        state.spend(noon, 1.5, false);
        let daily = Budget {
            per_day_usd: Some(1.0),
            per_month_usd: None,
        };
        let over = over_budget(&state, daily, noon + 1).expect("over the daily cap");
        assert_eq!((over.period, over.until_ms), ("day", 1_769_904_000_000));
        assert!(over.reason("team").contains("account_budget_usd_per_day"));
        // The next day what was spent yesterday no longer counts.
        assert_eq!(over_budget(&state, daily, 1_769_904_000_001), None);
        let monthly = Budget {
            per_day_usd: None,
            per_month_usd: Some(1.5),
        };
        let over = over_budget(&state, monthly, noon + 1).expect("over the monthly cap");
        assert_eq!((over.period, over.until_ms), ("month", 1_769_904_000_000));
        assert_eq!(over_budget(&state, Budget::default(), noon + 1), None);
    }
}
