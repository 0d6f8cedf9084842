//! What the unit tests of the server's rooms share: a core over a fresh store with the
//! dummy deployer, and a campaign reader that needs no JavaScript.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use camut::v1::deployer_server::Deployer;
use camut_deployer::dummy::DummyDeployer;

use crate::campaign::{CampaignInfo, Inspector};
use crate::core::{Core, CoreParts};
use crate::store::{JobRow, Store};

/// Reads `ID DRONES` as a campaign file.
pub struct Fake;

impl Inspector for Fake {
    fn inspect(&self, file: &str, source: &str) -> Result<CampaignInfo, String> {
        let (id, drones) = source
            .split_once(' ')
            .ok_or_else(|| format!("{file}:1:1: expected `ID DRONES`"))?;
        let drones: u32 = drones.parse().map_err(|e| format!("{file}:1:4: {e}"))?;
        Ok(CampaignInfo {
            id: id.into(),
            drones,
            min_drones: drones,
            users: 10,
            deployer: None,
            zone: None,
            instance_type: None,
            image: None,
            abort_on_drone_loss: false,
            thresholds: Vec::new(),
            iterations_per_drone: 100,
            max_operations: camut_stats::cap::DEFAULT_MAX_OPERATIONS,
        })
    }
}

/// A core over the store in `dir`, with a dummy deployer of `capacity` instances.
pub fn reopen(dir: &Path, capacity: u32) -> Arc<Core> {
    core_at(dir, Arc::new(DummyDeployer::with_capacity(capacity)))
}

/// A core over the store in `dir`, with `deployer` as its deployer `dummy`.
pub fn core_at(dir: &Path, deployer: Arc<dyn Deployer>) -> Arc<Core> {
    let mut deployers: BTreeMap<String, Arc<dyn Deployer>> = BTreeMap::new();
    deployers.insert("dummy".into(), deployer);
    Core::new(CoreParts {
        store: Store::open(dir).expect("store opens"),
        deployers,
        default_deployer: "dummy".into(),
        public_url: "http://127.0.0.1:1".into(),
        inspector: Arc::new(Fake),
        drone_timeout: Duration::from_secs(10),
        server_id: "camut-test".into(),
        default_tsdb: None,
    })
}

/// A core over a fresh store, and the directory to keep alive while it is used.
pub fn core_with(capacity: u32) -> (Arc<Core>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    (reopen(dir.path(), capacity), dir)
}

/// Waits (10 s at most) until job `id` has ended.
pub async fn wait_job(core: &Core, id: u64) -> JobRow {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let notified = core.changed.notified();
        let job = core
            .store
            .job(id)
            .expect("store reads")
            .expect("job exists");
        if !job.state.is_open() {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} still {} after 10 s",
            job.state
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
}
