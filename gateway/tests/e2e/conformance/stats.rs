//! Statistics checks: rows add up across writers, land in their minute and
//! hour, read back per scope, and sum per webhook.

use std::sync::Arc;
use std::time::Duration;

use hookgate::stats::{AttemptClass, Counters, FLEET, Field, Granularity, Row};
use hookgate::store::*;

fn row(scope: &str, minute: u64, ok: u64, failed: u64) -> Row {
    let mut c = Counters::default();
    for _ in 0..ok {
        c.attempt(AttemptClass::Success, Duration::from_millis(4));
        c.bump(Field::Succeeded);
    }
    for _ in 0..failed {
        c.attempt(AttemptClass::Http5xx, Duration::from_millis(40));
        c.bump(Field::Retries);
    }
    Row {
        scope: scope.into(),
        minute,
        counters: c,
    }
}

pub async fn statistics_add_up_per_minute_hour_and_webhook(s: Arc<dyn Store>) {
    // Minutes 0..3 of an hour, so the hour row holds all of them.
    let now_minute = now_ms() / 60_000;
    let base = now_minute - now_minute % 60 - 60;
    // Two writers (gateways) adding to the same rows.
    let first = vec![row("a", base, 3, 1), row("b", base + 1, 1, 0), row(FLEET, base, 3, 1)];
    let second = vec![
        row("a", base, 2, 0),
        row("a", base + 2, 0, 4),
        row(FLEET, base + 2, 0, 4),
    ];
    let (x, y) = tokio::join!(s.add_stats(&first), s.add_stats(&second));
    x.unwrap();
    y.unwrap();
    s.add_stats(&[]).await.unwrap();

    let a = s.read_stats("a", Granularity::Minute, base, base + 59).await.unwrap();
    let buckets: Vec<u64> = a.iter().map(|(b, _)| *b).collect();
    assert_eq!(buckets, [base, base + 2], "only minutes with figures come back");
    assert_eq!(a[0].1.get(Field::Succeeded), 5);
    assert_eq!(a[0].1.attempts(), 6);
    assert_eq!(a[1].1.get(Field::AttemptHttp5xx), 4);
    assert_eq!(a[1].1.get(Field::Retries), 4);

    let hour = s
        .read_stats("a", Granularity::Hour, base / 60, base / 60)
        .await
        .unwrap();
    assert_eq!(hour.len(), 1);
    assert_eq!(hour[0].1.attempts(), 10);
    assert_eq!(hour[0].1.get(Field::Succeeded), 5);
    // Five samples of 4 ms and five of 40 ms: p50 is the top of the (2.5, 5] ms bucket.
    assert_eq!(hour[0].1.latency_quantile_ms(0.5), Some(5.0));

    let fleet = s.read_stats(FLEET, Granularity::Minute, base, base + 59).await.unwrap();
    let total: u64 = fleet.iter().map(|(_, c)| c.attempts()).sum();
    assert_eq!(total, 8);

    let (per, more) = s
        .stats_by_webhook(Granularity::Minute, base, base + 59, 10)
        .await
        .unwrap();
    assert!(!more);
    let ids: Vec<&str> = per.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["a", "b"],
        "every webhook with figures, by id, never the fleet row"
    );
    assert_eq!(per[0].1.attempts(), 10);
    assert_eq!(per[1].1.get(Field::Succeeded), 1);

    let (per, more) = s
        .stats_by_webhook(Granularity::Hour, base / 60, base / 60, 1)
        .await
        .unwrap();
    assert!(more);
    assert_eq!(per.len(), 1);
    assert_eq!(per[0].0, "a");

    // A window that misses the rows reads nothing.
    let none = s
        .read_stats("a", Granularity::Minute, base + 3, base + 59)
        .await
        .unwrap();
    assert!(none.is_empty());
    let (per, _) = s
        .stats_by_webhook(Granularity::Minute, base + 3, base + 59, 10)
        .await
        .unwrap();
    assert!(per.is_empty());
}
