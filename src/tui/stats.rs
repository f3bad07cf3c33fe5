//! Live figures per node: items received per second (kept for the last ten minutes, for a
//! sparkline), when the last one came, gaps and resyncs, and the publish-to-receive latency
//! of items that carry their own time (`s` shows them; [`super::view`] draws them).
//!
//! Only live items count (notifications), not the stored items a resync brings back. Times
//! are the model's clock, which the shell sets just before it hands over network events.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

/// Seconds of arrivals kept.
pub const WINDOW_SECS: i64 = 600;
/// Latencies kept (the newest).
const LATENCIES: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct NodeStats {
    /// (second, items received in it), oldest first; seconds without items are not kept.
    counts: VecDeque<(i64, u32)>,
    /// When the last live item came.
    pub last_received: Option<DateTime<Utc>>,
    /// Live items received in all.
    pub received: u64,
    /// Resyncs finished (after a gap, asked for, or at a fresh session).
    pub resyncs: u64,
    /// Receive time less the item's own time, in milliseconds, newest last.
    latencies: VecDeque<i64>,
}

/// The latency of a node's items: what the clocks allow saying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// No item carried its own time.
    Unknown,
    /// Median and 95th percentile, in milliseconds, over `n` items.
    Known { median: i64, p95: i64, n: usize },
    /// Most items arrived before the time they carry: the publisher's clock is ahead, so
    /// nothing can be said (the median, negative, is given).
    ClocksDiffer { median: i64 },
}

impl NodeStats {
    /// A live item came at `now`; `own` is the time it carries, if any.
    pub fn on_item(&mut self, now: DateTime<Utc>, own: Option<DateTime<Utc>>) {
        let sec = now.timestamp();
        match self.counts.back_mut() {
            Some((s, n)) if *s == sec => *n = n.saturating_add(1),
            _ => self.counts.push_back((sec, 1)),
        }
        while self
            .counts
            .front()
            .is_some_and(|(s, _)| *s <= sec - WINDOW_SECS)
        {
            self.counts.pop_front();
        }
        self.last_received = Some(now);
        self.received += 1;
        if let Some(t) = own {
            self.latencies
                .push_back(now.signed_duration_since(t).num_milliseconds());
            if self.latencies.len() > LATENCIES {
                self.latencies.pop_front();
            }
        }
    }

    /// Items per second over the last `secs` seconds before `now`.
    pub fn rate(&self, now: DateTime<Utc>, secs: i64) -> f64 {
        let from = now.timestamp() - secs;
        let n: u32 = self
            .counts
            .iter()
            .filter(|(s, _)| *s > from)
            .map(|(_, n)| *n)
            .sum();
        f64::from(n) / f64::from(u32::try_from(secs.max(1)).unwrap_or(1))
    }

    /// Items per bucket of `bucket_secs`, the last `buckets` of them, oldest first (for a
    /// sparkline).
    pub fn buckets(&self, now: DateTime<Utc>, buckets: usize, bucket_secs: i64) -> Vec<u64> {
        let mut out = vec![0u64; buckets];
        let end = now.timestamp();
        let span = i64::try_from(buckets).unwrap_or(i64::MAX) * bucket_secs;
        for (s, n) in &self.counts {
            let age = end - s;
            if age < 0 || age >= span {
                continue;
            }
            let from_end = usize::try_from(age / bucket_secs).unwrap_or(0);
            if let Some(b) = out.get_mut(buckets - 1 - from_end) {
                *b += u64::from(*n);
            }
        }
        out
    }

    pub fn latency(&self) -> Latency {
        if self.latencies.is_empty() {
            return Latency::Unknown;
        }
        let mut v: Vec<i64> = self.latencies.iter().copied().collect();
        v.sort_unstable();
        let median = v[v.len() / 2];
        if median < 0 {
            return Latency::ClocksDiffer { median };
        }
        let p95 = v[(v.len() * 95 / 100).min(v.len() - 1)];
        Latency::Known {
            median,
            p95,
            n: v.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).expect("time")
    }

    #[test]
    fn rates_and_buckets_follow_the_clock() {
        let mut st = NodeStats::default();
        for s in 0..20 {
            st.on_item(t(s), None);
            st.on_item(t(s), None);
        }
        assert!((st.rate(t(19), 10) - 2.0).abs() < 1e-9);
        assert_eq!(st.buckets(t(19), 4, 5), vec![10, 10, 10, 10]);
        // Nothing since: the rate falls, the old buckets stay until they leave the window.
        assert!(st.rate(t(40), 10).abs() < 1e-9);
        assert_eq!(st.buckets(t(24), 4, 5), vec![10, 10, 10, 0]);
        assert_eq!(st.buckets(t(39), 4, 5), vec![0, 0, 0, 0]);
        st.on_item(t(700), None);
        assert_eq!(st.counts.len(), 1, "older than the window: dropped");
        assert_eq!(st.received, 41);
        assert_eq!(st.last_received, Some(t(700)));
    }

    #[test]
    fn latency_is_said_only_where_clocks_allow() {
        let mut st = NodeStats::default();
        assert_eq!(st.latency(), Latency::Unknown);
        for ms in [10, 20, 30, 40, 1000] {
            st.on_item(t(10), Some(t(10) - chrono::Duration::milliseconds(ms)));
        }
        assert_eq!(
            st.latency(),
            Latency::Known {
                median: 30,
                p95: 1000,
                n: 5
            }
        );
        let mut ahead = NodeStats::default();
        for _ in 0..3 {
            ahead.on_item(t(10), Some(t(12)));
        }
        assert_eq!(ahead.latency(), Latency::ClocksDiffer { median: -2000 });
    }
}
