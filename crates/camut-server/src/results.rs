//! A campaign's results: the merged summary with per-drone rows, saved when the run
//! ends, and the API's view of it.
//!
//! The live totals are exact (every stored delta merged once, and rebuilt from the
//! store after a restart), so the final summary is built from them; the stored deltas are
//! read again only when this process holds no run of the campaign.

use std::collections::BTreeMap;

use camut::v1;
use camut_stats::series::SeriesPoint;
use camut_stats::{OperationCap, StatsSet, Summary};
use prost::Message;

use crate::core::{Core, DroneCounts, HISTORY_POINTS};
use crate::error::ServerError;
use crate::state::DroneState;
use crate::store::{CampaignRow, SavedResults};

/// Decodes a stored delta.
pub(crate) fn decode(bytes: &[u8]) -> Option<v1::StatsDelta> {
    v1::StatsDelta::decode(bytes).ok()
}

/// What a summary is built from.
struct RunFigures {
    totals: StatsSet,
    per_drone: BTreeMap<String, DroneCounts>,
    duration_s: f64,
    lost: BTreeMap<String, String>,
    /// Lost drones that came back with all their statistics.
    returned: std::collections::HashSet<String>,
    /// Drones whose statistics the store refused and that have not delivered them
    /// since: first refused number and the error.
    refused: BTreeMap<String, (u64, String)>,
    /// Drones that sent deltas that did not check: how many, the first's number, why.
    invalid: BTreeMap<String, (u64, u64, String)>,
}

impl Core {
    /// The figures of a campaign's run: the live ones, or the store's when this process
    /// follows no run of it.
    fn run_figures(&self, campaign: &str) -> Result<RunFigures, ServerError> {
        let live = self.with_live(campaign, |l| {
            (l.started.is_some() || !l.no_stats()).then(|| RunFigures {
                totals: l.totals().into_owned(),
                per_drone: l.per_drone.clone(),
                duration_s: l.elapsed_s(),
                lost: l.lost.clone(),
                returned: l.returned.clone(),
                refused: l.refused.clone(),
                invalid: l.invalid.clone(),
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
            returned: Default::default(),
            refused: BTreeMap::new(),
            invalid: BTreeMap::new(),
        };
        let max_operations = self.info(&self.campaign_row(campaign)?)?.max_operations;
        let mut ops = OperationCap::new(max_operations);
        for (drone, _, bytes) in self.store.stats(campaign)? {
            if let Some(d) = decode(&bytes) {
                if camut::stats::merge_wire(&mut f.totals, &d, &mut ops).is_ok() {
                    f.per_drone.entry(drone).or_default().add(&d);
                }
            }
        }
        Ok(f)
    }

    /// Builds the results of the campaign's current run and saves them under its number.
    pub(crate) async fn finalize(&self, campaign: &str) -> Result<Summary, ServerError> {
        // The series takes the last interval first: it then adds up to these results.
        self.flush_series(campaign);
        let (summary, mut results) = self.build_results(campaign)?;
        results.finished = true;
        self.store
            .set_results(
                campaign,
                results.run,
                results.encode_to_vec(),
                summary.thresholds_ok,
            )
            .await?;
        Ok(summary)
    }

    /// The run that `run` names (0: the latest): a finished run, or the current one.
    /// The latest is the current run once it has statistics or finished, otherwise the
    /// last finished run (a deployment that failed or has not started yet hides no
    /// results).
    fn resolve_run(&self, row: &CampaignRow, run: u32) -> Result<u32, ServerError> {
        let finished = self.store.runs(&row.id)?;
        let is_finished = |n: u32| finished.iter().any(|(r, _)| *r == n);
        if run != 0 {
            if run == row.run || is_finished(run) {
                return Ok(run);
            }
            return Err(ServerError::RunNotFound {
                campaign: row.id.clone(),
                run,
                known: if finished.is_empty() {
                    "none finished".into()
                } else {
                    finished
                        .iter()
                        .map(|(r, _)| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        }
        let current_has_data = is_finished(row.run)
            || self.with_live(&row.id, |l| l.started.is_some() || !l.no_stats())
            || self.store.has_stats(&row.id)?;
        Ok(match finished.last() {
            Some((last, _)) if !current_has_data => *last,
            _ => row.run,
        })
    }

    /// The finished runs of a campaign, oldest first, with their headline figures.
    fn run_list(&self, id: &str) -> Result<Vec<v1::RunInfo>, ServerError> {
        let mut out = Vec::new();
        for (run, finished_ms) in self.store.runs(id)? {
            let (requests, thresholds_ok) = match self.saved_results(id, run)? {
                Some(r) => (r.run_summary().requests, r.thresholds_ok),
                None => (0, false),
            };
            out.push(v1::RunInfo {
                run,
                finished_ms,
                requests,
                thresholds_ok,
            });
        }
        Ok(out)
    }

    /// The saved results of a finished run.
    fn saved_results(
        &self,
        id: &str,
        run: u32,
    ) -> Result<Option<v1::CampaignResults>, ServerError> {
        Ok(match self.store.results(id, run)? {
            Some(SavedResults::Encoded(bytes)) => Some(
                v1::CampaignResults::decode(bytes.as_slice())
                    .map_err(|e| ServerError::Store(format!("results of {id} run {run}: {e}")))?,
            ),
            Some(SavedResults::Json(json)) => Some(legacy_results(id, &json)?),
            None => None,
        })
    }

    /// The results of the run so far: the summary, and the API's message with per-drone
    /// rows.
    pub(crate) fn build_results(
        &self,
        campaign: &str,
    ) -> Result<(Summary, v1::CampaignResults), ServerError> {
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
        let mut health: BTreeMap<String, v1::GeneratorHealth> = self
            .store
            .drone_summaries(campaign)?
            .into_iter()
            .filter_map(|(id, bytes)| {
                let summary = v1::RunSummary::decode(bytes.as_slice()).ok()?;
                Some((id, summary.health?))
            })
            .collect();
        let drones = drones
            .into_iter()
            .map(|d| {
                let c = figures.per_drone.get(&d.id).copied().unwrap_or_default();
                v1::DroneResult {
                    health: health.remove(&d.id),
                    lost: figures.lost.get(&d.id).cloned().unwrap_or_default(),
                    id: d.id,
                    index: d.index,
                    state: d.state.wire(),
                    requests: c.requests,
                    errors: c.errors,
                    iterations: c.iterations,
                }
            })
            .collect();
        let results = v1::CampaignResults {
            id: campaign.into(),
            state: row.state.wire(),
            thresholds_ok: summary.thresholds_ok,
            thresholds: summary
                .thresholds
                .iter()
                .map(camut::summary::verdict_to_wire)
                .collect(),
            summary: Some(camut::summary::to_wire(&summary)),
            // A lost drone that came back with all its statistics leaves nothing out.
            degraded: figures.lost.keys().any(|d| !figures.returned.contains(d))
                || !figures.refused.is_empty()
                || !figures.invalid.is_empty(),
            run: row.run,
            finished: false,
            runs: Vec::new(),
            lost: figures
                .lost
                .iter()
                .map(|(d, why)| match figures.returned.contains(d) {
                    true => format!(
                        "{d}: {why}; it came back and delivered all its statistics (counted)"
                    ),
                    false => format!("{d}: {why}"),
                })
                .chain(figures.refused.iter().map(|(d, (seq, why))| {
                    format!(
                        "{d}: its statistics from #{seq} on are not counted: the store \
                         refused them ({why})"
                    )
                }))
                .chain(figures.invalid.iter().map(|(d, (n, seq, why))| {
                    format!(
                        "{d}: {n} statistics deltas were invalid and are not counted \
                         (first: #{seq}, {why})"
                    )
                }))
                .collect(),
            drones,
        };
        Ok((summary, results))
    }

    /// The per-second series of a run (0: the latest), from the store.
    pub fn series(&self, id: &str, run: u32) -> Result<v1::CampaignSeries, ServerError> {
        let row = self.campaign_row(id)?;
        let run = self.resolve_run(&row, run)?;
        Ok(v1::CampaignSeries {
            id: id.into(),
            points: self.stored_series(id, run, u32::MAX)?,
        })
    }

    /// The last hour of the current run's stored series, as the live charts keep it.
    pub(crate) fn stored_history(&self, id: &str) -> Vec<SeriesPoint> {
        let Ok(row) = self.campaign_row(id) else {
            return Vec::new();
        };
        self.stored_series(id, row.run, HISTORY_POINTS as u32)
            .unwrap_or_default()
            .iter()
            .map(camut::series::from_wire)
            .collect()
    }

    /// The newest `last` points of the stored series of a run, oldest first.
    fn stored_series(
        &self,
        id: &str,
        run: u32,
        last: u32,
    ) -> Result<Vec<v1::SeriesPoint>, ServerError> {
        Ok(self
            .store
            .series(id, run, last)?
            .iter()
            .filter_map(|bytes| v1::SeriesPoint::decode(bytes.as_slice()).ok())
            .collect())
    }

    /// The results of a run of a campaign (0: the latest): final when the run is over,
    /// otherwise so far; with the list of finished runs.
    pub fn results(&self, id: &str, run: u32) -> Result<v1::CampaignResults, ServerError> {
        let row = self.campaign_row(id)?;
        let run = self.resolve_run(&row, run)?;
        let mut results = match self.saved_results(id, run)? {
            Some(mut r) => {
                r.finished = true;
                r
            }
            None => self.build_results(id)?.1,
        };
        results.run = run;
        results.state = row.state.wire();
        results.runs = self.run_list(id)?;
        Ok(results)
    }
}

/// Results saved as JSON by an earlier version: the summary's fields plus `drones`,
/// `degraded` and `lost`.
fn legacy_results(id: &str, json: &str) -> Result<v1::CampaignResults, ServerError> {
    let bad = |e: serde_json::Error| ServerError::Store(format!("results of {id}: {e}"));
    let summary: Summary = serde_json::from_str(json).map_err(bad)?;
    let v: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
    let text = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();
    let drones = v["drones"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| v1::DroneResult {
                    id: text(&d["id"]),
                    index: d["index"].as_u64().unwrap_or(0) as u32,
                    state: d["state"]
                        .as_str()
                        .and_then(|s| s.parse::<DroneState>().ok())
                        .map_or(0, DroneState::wire),
                    requests: d["requests"].as_u64().unwrap_or(0),
                    errors: d["errors"].as_u64().unwrap_or(0),
                    iterations: d["iterations"].as_u64().unwrap_or(0),
                    lost: text(&d["lost"]),
                    health: None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(v1::CampaignResults {
        id: id.into(),
        state: 0,
        thresholds_ok: summary.thresholds_ok,
        thresholds: summary
            .thresholds
            .iter()
            .map(camut::summary::verdict_to_wire)
            .collect(),
        degraded: v["degraded"].as_bool().unwrap_or(false),
        lost: v["lost"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default(),
        summary: Some(camut::summary::to_wire(&summary)),
        drones,
        run: 1,
        finished: true,
        runs: Vec::new(),
    })
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
        core.create("c.js", "c 1", &Default::default())
            .await
            .unwrap();
        for (drone, seq, n) in [("a", 1, 3), ("a", 2, 4), ("b", 1, 5)] {
            let wire = camut::stats::to_wire(&delta(n));
            let bytes = prost::Message::encode_to_vec(&wire);
            assert!(core
                .store
                .insert_stats("c", drone, seq, bytes)
                .await
                .unwrap());
            let checked = camut::stats::check_wire(&wire).unwrap();
            core.with_live("c", |l| l.merge(drone, &checked)).unwrap();
        }
        let (live, _) = core.build_results("c").unwrap();
        assert_eq!((live.requests, live.iterations.completed), (12, 12));
        // A process that follows no run reads the deltas back.
        drop(core);
        let core = crate::testing::reopen(dir.path(), 1);
        let (stored, results) = core.build_results("c").unwrap();
        assert_eq!(stored.requests, live.requests);
        assert_eq!(
            stored.metrics["http.response_time"].count,
            live.metrics["http.response_time"].count
        );
        assert!(!results.degraded);
        assert_eq!(
            results.drones.len(),
            0,
            "no drone rows without drones stored"
        );
        core.finalize("c").await.unwrap();
        let r = core.results("c", 0).unwrap();
        assert!(r.thresholds_ok);
        assert_eq!(r.run_summary().requests, 12);
    }

    #[tokio::test]
    async fn results_saved_as_json_by_an_earlier_version_still_read() {
        let (core, _dir) = core_with(1);
        core.create("c.js", "c 1", &Default::default())
            .await
            .unwrap();
        let json = r#"{"campaign":"c","duration_s":2.0,"vus":10,"iterations":{"started":5,"completed":5,"failed":0,"timed_out":0,"dropped":0,"per_s":2.5},"requests":5,"errors":0,"requests_per_s":2.5,"connections":1,"done_twice":0,"metrics":{},"operations":[],"error_messages":[],"thresholds":[],"thresholds_ok":true,"health":null,"drones":[{"id":"d1","index":0,"state":"finished","requests":5,"errors":0,"iterations":5,"lost":null}],"degraded":false,"lost":[]}"#;
        core.store
            .write(move |db| {
                db.execute(
                    "INSERT INTO runs (campaign, run, summary, thresholds_ok) VALUES ('c', 1, ?1, 1)",
                    [json],
                )
            })
            .await
            .unwrap();
        let r = core.results("c", 0).unwrap();
        assert_eq!(r.run_summary().requests, 5);
        assert_eq!(r.drones[0].id, "d1");
        assert_eq!(r.drones[0].iterations, 5);
        assert_eq!(r.state(), camut::v1::CampaignState::Created);
    }
}
