//! Campaign create, update and delete, and the API's view of a campaign.
//!
//! Reading a campaign file compiles JavaScript (through the [`Inspector`]), which may
//! take seconds: it runs on the blocking pool, never on the async runtime.
//!
//! [`Inspector`]: crate::campaign::Inspector

use camut::v1;

use crate::campaign::{check_update, CampaignInfo};
use crate::core::{lock, Core};
use crate::env::CampaignEnv;
use crate::error::ServerError;
use crate::state::CampaignState;
use crate::store::{now_ms, CampaignRow};

/// A fresh join token: 128 random bits, hex.
fn join_token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    bytes[..8]
        .iter_mut()
        .zip(nanos.to_le_bytes())
        .for_each(|(b, n)| *b ^= n);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Core {
    /// Reads a campaign file on the blocking pool: its info, or what is wrong.
    async fn inspect_blocking(
        &self,
        file: &str,
        source: &str,
    ) -> Result<Result<CampaignInfo, String>, ServerError> {
        let inspector = self.inspector.clone();
        let (file, source) = (file.to_owned(), source.to_owned());
        tokio::task::spawn_blocking(move || inspector.inspect(&file, &source))
            .await
            .map_err(|e| ServerError::Store(format!("the campaign inspector failed: {e}")))
    }

    async fn inspect(&self, file: &str, source: &str) -> Result<CampaignInfo, ServerError> {
        self.inspect_blocking(file, source)
            .await?
            .map_err(|message| ServerError::InvalidArgument {
                field: "source".into(),
                message,
            })
    }

    /// Checks a file without storing it: its id, or what is wrong.
    pub async fn inspect_only(&self, file: &str, source: &str) -> Result<String, String> {
        match self.inspect_blocking(file, source).await {
            Ok(r) => r.map(|i| i.id),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Stores a new campaign (after inspecting it) with the environment its drones get.
    pub async fn create(
        &self,
        file: &str,
        source: &str,
        env: &CampaignEnv,
    ) -> Result<CampaignRow, ServerError> {
        let info = self.inspect(file, source).await?;
        let now = now_ms();
        let row = CampaignRow {
            id: info.id.clone(),
            file: file.into(),
            source: source.into(),
            info: serde_json::to_string(&info).expect("info serializes"),
            state: CampaignState::Created,
            join_token: join_token(),
            error: String::new(),
            created_ms: now,
            updated_ms: now,
            run: 1,
            env: env.to_json(),
        };
        if !self.store.insert_campaign(&row).await? {
            return Err(ServerError::CampaignExists(info.id));
        }
        self.logs.push(
            "info",
            "server",
            &row.id,
            format!("campaign {} created from {file}", row.id),
        );
        Ok(row)
    }

    /// Replaces a campaign's source (the id in the file names it), and its environment
    /// when `env` is given.
    pub async fn update(
        &self,
        file: &str,
        source: &str,
        env: Option<&CampaignEnv>,
    ) -> Result<CampaignRow, ServerError> {
        let info = self.inspect(file, source).await?;
        let row = self.campaign_row(&info.id)?;
        check_update(&self.info(&row)?, &info, row.state)?;
        self.store
            .update_campaign_source(
                &info.id,
                file,
                source,
                &serde_json::to_string(&info).expect("info serializes"),
                env.map(CampaignEnv::to_json),
            )
            .await?;
        if row.state == CampaignState::Deployed {
            // The drones compiled the old source: the new one needs a new deploy.
            self.with_live(&info.id, |l| l.projected = None);
            self.set_state(
                &info.id,
                CampaignState::Spawned,
                "updated after deploy: deploy again",
            )
            .await;
        }
        self.logs.push(
            "info",
            "server",
            &info.id,
            format!("campaign {} updated from {file}", info.id),
        );
        self.campaign_row(&info.id)
    }

    /// Deletes a campaign that holds no instances.
    pub async fn delete(&self, id: &str) -> Result<(), ServerError> {
        let row = self.campaign_row(id)?;
        if !matches!(row.state, CampaignState::Created | CampaignState::Killed) {
            return Err(ServerError::WrongState {
                campaign: id.into(),
                state: row.state,
                what: "it may hold instances: kill it first, then delete".into(),
            });
        }
        self.store.delete_campaign(id).await?;
        self.forget(id);
        self.logs
            .push("info", "server", id, format!("campaign {id} deleted"));
        Ok(())
    }

    /// Campaign as the API shows it.
    pub fn campaign_view(&self, row: &CampaignRow) -> Result<v1::Campaign, ServerError> {
        // A stored row that no longer reads is shown with its error, so that one bad row
        // does not hide every campaign from listings.
        let (info, unreadable) = match self.info(row) {
            Ok(info) => (info, None),
            Err(e) => (CampaignInfo::unreadable(&row.id), Some(e.to_string())),
        };
        let stored = self.store.drones(&row.id)?;
        let cell = self.cell(&row.id);
        let (drone_status, iterations_done) = {
            let live = lock(&cell);
            let status = stored
                .into_iter()
                .map(|d| match live.sessions.get(&d.id) {
                    Some(s) => v1::DroneStatus {
                        error: if d.error.is_empty() {
                            s.error.clone()
                        } else {
                            d.error
                        },
                        ..s.status(&d.id)
                    },
                    None => v1::DroneStatus {
                        id: d.id,
                        index: d.index,
                        state: d.state.wire(),
                        iterations_done: 0,
                        errors: 0,
                        last_seen_ms: 0,
                        error: d.error,
                    },
                })
                .collect::<Vec<_>>();
            (status, live.iterations_done())
        };
        Ok(v1::Campaign {
            id: row.id.clone(),
            state: row.state.wire(),
            file: row.file.clone(),
            source: row.source.clone(),
            drones: info.drones,
            min_drones: info.min_drones,
            users: info.users,
            deployer: info
                .deployer
                .clone()
                .unwrap_or_else(|| self.default_deployer.clone()),
            zone: info.zone.clone().unwrap_or_default(),
            instances: self
                .store
                .instances(&row.id)?
                .into_iter()
                .map(|(id, address, state)| v1::Instance { id, address, state })
                .collect(),
            iterations_planned: info.iterations_per_drone.saturating_mul(
                if drone_status.is_empty() {
                    info.drones as u64
                } else {
                    drone_status.len() as u64
                },
            ),
            drone_status,
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
            error: unreadable.unwrap_or_else(|| row.error.clone()),
            iterations_done,
            run: row.run,
            env: CampaignEnv::from_json(&row.env).view(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::core_with;

    #[tokio::test]
    async fn a_row_whose_options_do_not_read_is_listed_with_its_error() {
        let (core, _dir) = core_with(1);
        core.create("a.js", "a 1", &Default::default())
            .await
            .unwrap();
        core.create("b.js", "b 1", &Default::default())
            .await
            .unwrap();
        core.store
            .write(|db| db.execute("UPDATE campaigns SET info = '{not json' WHERE id = 'a'", []))
            .await
            .unwrap();
        let views: Vec<_> = core
            .store
            .campaigns(100)
            .unwrap()
            .iter()
            .map(|row| core.campaign_view(row).expect("every row has a view"))
            .collect();
        assert_eq!(views.len(), 2);
        let a = views.iter().find(|c| c.id == "a").unwrap();
        assert!(a.error.contains("campaign a info"), "{}", a.error);
        let b = views.iter().find(|c| c.id == "b").unwrap();
        assert!(b.error.is_empty());
    }
}
