//! A campaign's results: the merged summary with per-drone rows, saved when the run
//! ends, and the API's view of it.
//!
//! The live totals are exact (every stored delta merged once, and rebuilt from the
//! store after a restart), so the final summary is built from them; the stored deltas are
//! read again only when this process holds no run of the campaign.

use std::collections::BTreeMap;

use camut::v1;
use camut_stats::{StatsSet, Summary};

use crate::core::{Core, DroneCounts};
use crate::error::ServerError;

/// Decodes a stored delta.
pub(crate) fn decode(bytes: &[u8]) -> Option<StatsSet> {
    let d = <v1::StatsDelta as prost::Message>::decode(bytes).ok()?;
    camut::stats::from_wire(&d).ok()
}

/// What a summary is built from.
struct RunFigures {
    totals: StatsSet,
    per_drone: BTreeMap<String, DroneCounts>,
    duration_s: f64,
    lost: BTreeMap<String, String>,
}

impl Core {
    /// The figures of a campaign's run: the live ones, or the store's when this process
    /// follows no run of it.
    fn run_figures(&self, campaign: &str) -> Result<RunFigures, ServerError> {
        let live = self.with_live(campaign, |l| {
            (l.started.is_some() || !l.totals.is_empty()).then(|| RunFigures {
                totals: l.totals.clone(),
                per_drone: l.per_drone.clone(),
                duration_s: l.elapsed_s(),
                lost: l.lost.clone(),
            })
        });
        if let Some(f) = live {
            return Ok(f);
        }
        let mut f = RunFigures {
            totals: StatsSet::default(),
            per_drone: BTreeMap::new(),
            duration_s: 0.0,
            lost: BTreeMap::new(),
        };
        for (drone, bytes) in self.store.stats(campaign)? {
            if let Some(set) = decode(&bytes) {
                f.per_drone.entry(drone).or_default().add(&set);
                f.totals.merge(&set);
            }
        }
        Ok(f)
    }

    /// Builds the campaign's summary and saves it as its results.
    pub(crate) async fn finalize(&self, campaign: &str) -> Result<Summary, ServerError> {
        let (summary, json) = self.summary(campaign)?;
        self.store
            .set_results(campaign, json, summary.thresholds_ok)
            .await?;
        Ok(summary)
    }

    /// The summary of the run so far, and its JSON with per-drone rows.
    pub(crate) fn summary(&self, campaign: &str) -> Result<(Summary, String), ServerError> {
        let row = self.campaign_row(campaign)?;
        let info = self.info(&row)?;
        let figures = self.run_figures(campaign)?;
        let drones = self.store.drones(campaign)?;
        let summary = Summary::build(
            campaign,
            info.users as u64 * drones.len().max(1) as u64,
            &figures.totals,
            figures.duration_s,
            &info.thresholds,
            None,
        );
        let mut json = serde_json::to_value(&summary).expect("summary serializes");
        let rows: Vec<serde_json::Value> = drones
            .iter()
            .map(|d| {
                let c = figures.per_drone.get(&d.id).copied().unwrap_or_default();
                serde_json::json!({
                    "id": d.id,
                    "index": d.index,
                    "state": d.state.as_str(),
                    "requests": c.requests,
                    "errors": c.errors,
                    "iterations": c.iterations,
                    "lost": figures.lost.get(&d.id),
                })
            })
            .collect();
        json["drones"] = serde_json::Value::Array(rows);
        json["degraded"] = serde_json::Value::Bool(!figures.lost.is_empty());
        json["lost"] = serde_json::to_value(
            figures
                .lost
                .iter()
                .map(|(d, why)| format!("{d}: {why}"))
                .collect::<Vec<_>>(),
        )
        .expect("strings serialize");
        Ok((summary, json.to_string()))
    }

    /// The results of a campaign: final when the run is over, otherwise so far.
    pub fn results(&self, id: &str) -> Result<v1::Results, ServerError> {
        let row = self.campaign_row(id)?;
        let (json, ok) = match self.store.results(id)? {
            Some(r) => r,
            None => {
                let (s, json) = self.summary(id)?;
                (json, s.thresholds_ok)
            }
        };
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        let thresholds = v["thresholds"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| v1::ThresholdVerdict {
                        metric: t["metric"].as_str().unwrap_or_default().into(),
                        expr: t["expr"].as_str().unwrap_or_default().into(),
                        ok: t["ok"].as_bool().unwrap_or(false),
                        value: t["value"].as_f64(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(v1::Results {
            id: id.into(),
            state: row.state.as_str().into(),
            thresholds_ok: ok,
            thresholds,
            degraded: v["degraded"].as_bool().unwrap_or(false),
            lost: v["lost"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            summary_json: json,
        })
    }
}

#[cfg(test)]
mod tests {
    use camut_stats::{CallKey, StatsSet};

    use crate::testing::core_with;

    fn delta(requests: u64) -> StatsSet {
        let mut set = StatsSet::default();
        let key = CallKey {
            operation: "GET /".into(),
            status_class: 200,
        };
        let call = set.call(&key);
        for i in 0..requests {
            call.requests += 1;
            call.response_time.record(1_000 + i).unwrap();
        }
        set.iterations.completed = requests;
        set
    }

    #[tokio::test]
    async fn live_totals_and_the_stored_deltas_give_the_same_summary() {
        let (core, dir) = core_with(1);
        core.create("c.js", "c 1").await.unwrap();
        for (drone, seq, n) in [("a", 1, 3), ("a", 2, 4), ("b", 1, 5)] {
            let set = delta(n);
            let bytes = prost::Message::encode_to_vec(&camut::stats::to_wire(&set));
            assert!(core
                .store
                .insert_stats("c", drone, seq, bytes)
                .await
                .unwrap());
            core.with_live("c", |l| l.merge(drone, &set));
        }
        let (live, _) = core.summary("c").unwrap();
        assert_eq!((live.requests, live.iterations.completed), (12, 12));
        // A process that follows no run reads the deltas back.
        drop(core);
        let core = crate::testing::reopen(dir.path(), 1);
        let (stored, json) = core.summary("c").unwrap();
        assert_eq!(stored.requests, live.requests);
        assert_eq!(
            stored.metrics["http.response_time"].count,
            live.metrics["http.response_time"].count
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["degraded"], false);
        core.finalize("c").await.unwrap();
        let r = core.results("c").unwrap();
        assert!(r.thresholds_ok);
        assert!(
            r.summary_json.contains("\"requests\":12"),
            "{}",
            r.summary_json
        );
    }
}
