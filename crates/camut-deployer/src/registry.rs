//! The instance table shared by the built-in deployers: ids, campaigns, states, the
//! create rules and the order of listings.

use std::collections::HashMap;

use camut::v1::{CreateInstancesRequest, DeployedInstance};
use tonic::Status;

/// State of an instance created and not yet configured (local).
pub(crate) const PENDING: &str = "pending";
/// State of an instance created and up (dummy).
pub(crate) const RUNNING: &str = "running";
/// State of an instance whose drone was started.
pub(crate) const CONFIGURED: &str = "configured";
/// State of an instance whose drone has ended.
pub(crate) const TERMINATED: &str = "terminated";

/// One instance held by a deployer, with the deployer's own data `T`.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    /// Creation order, for stable listings.
    seq: u64,
    /// Campaign the instance belongs to.
    pub(crate) campaign: String,
    /// One of the state constants of this module.
    pub(crate) state: &'static str,
    /// The deployer's own data.
    pub(crate) extra: T,
}

impl<T> Entry<T> {
    /// The instance as the API reports it.
    pub(crate) fn to_instance(&self, id: &str) -> DeployedInstance {
        DeployedInstance {
            id: id.to_owned(),
            campaign: self.campaign.clone(),
            address: String::new(),
            state: self.state.to_owned(),
            ..DeployedInstance::default()
        }
    }
}

/// The instances of one deployer, keyed by id.
#[derive(Debug)]
pub(crate) struct Registry<T> {
    /// Deployer name, the first part of every id.
    prefix: &'static str,
    next_seq: u64,
    entries: HashMap<String, Entry<T>>,
}

impl<T> Registry<T> {
    /// An empty table whose ids start with `prefix`.
    pub(crate) fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            next_seq: 0,
            entries: HashMap::new(),
        }
    }

    /// Creates the instances `request` asks for, in state `state`, each with the data
    /// `extra()`, keeping the total at or under `capacity`.
    ///
    /// Fails with `INVALID_ARGUMENT` on a request without campaign, with `max` 0 or with
    /// `min` above `max`, and with `RESOURCE_EXHAUSTED` (creating nothing) when fewer than
    /// `min` fit.
    pub(crate) fn create(
        &mut self,
        request: &CreateInstancesRequest,
        capacity: Option<u32>,
        state: &'static str,
        mut extra: impl FnMut() -> T,
    ) -> Result<Vec<DeployedInstance>, Status> {
        let count = self.count(request, capacity)?;
        let campaign = &request.campaign;
        // A destroy frees a whole campaign, so a campaign's ids are always 0..held.
        let first = self.campaign_len(campaign);
        let mut created = Vec::with_capacity(count);
        for n in first..first + count {
            let id = format!("{}-{campaign}-{n}", self.prefix);
            let entry = Entry {
                seq: self.next_seq,
                campaign: campaign.clone(),
                state,
                extra: extra(),
            };
            self.next_seq += 1;
            created.push(entry.to_instance(&id));
            self.entries.insert(id, entry);
        }
        Ok(created)
    }

    /// How many instances a create gets, by the rules of [`Registry::create`].
    fn count(
        &self,
        request: &CreateInstancesRequest,
        capacity: Option<u32>,
    ) -> Result<usize, Status> {
        let (min, max) = (request.min, request.max);
        if request.campaign.is_empty() {
            return Err(Status::invalid_argument("campaign is required"));
        }
        if max == 0 {
            return Err(Status::invalid_argument("max must be at least 1"));
        }
        if min > max {
            return Err(Status::invalid_argument(format!(
                "min ({min}) is above max ({max})"
            )));
        }
        let Some(capacity) = capacity else {
            return Ok(max as usize);
        };
        let available = (capacity as usize).saturating_sub(self.entries.len());
        if available < min as usize {
            return Err(Status::resource_exhausted(format!(
                "{} deployer: campaign {} needs at least {min} instances, {available} available",
                self.prefix, request.campaign
            )));
        }
        Ok(available.min(max as usize))
    }

    /// How many instances the campaign holds.
    fn campaign_len(&self, campaign: &str) -> usize {
        self.entries
            .values()
            .filter(|e| e.campaign == campaign)
            .count()
    }

    /// The campaign's instances named in `ids` (all of the campaign's when `ids` is
    /// empty), in creation order, plus the ids that are not the campaign's with why.
    pub(crate) fn select(
        &self,
        campaign: &str,
        ids: &[String],
    ) -> (Vec<String>, HashMap<String, String>) {
        if ids.is_empty() {
            let found = self
                .sorted(campaign)
                .into_iter()
                .map(|(id, _)| id.clone())
                .collect();
            return (found, HashMap::new());
        }
        let mut found = Vec::new();
        let mut failed = HashMap::new();
        for id in ids {
            match self.entries.get(id) {
                Some(entry) if entry.campaign == campaign => found.push(id.clone()),
                _ => {
                    failed.insert(
                        id.clone(),
                        format!("no instance {id} in campaign {campaign}"),
                    );
                }
            }
        }
        (found, failed)
    }

    /// The instance `id`, if held.
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Entry<T>> {
        self.entries.get_mut(id)
    }

    /// Removes and returns the campaign's instances, in creation order.
    pub(crate) fn remove_campaign(&mut self, campaign: &str) -> Vec<(String, Entry<T>)> {
        let ids: Vec<String> = self
            .sorted(campaign)
            .into_iter()
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.entries.remove(&id).map(|e| (id, e)))
            .collect()
    }

    /// The campaign's instances (all when `campaign` is empty), in creation order.
    pub(crate) fn list_mut(&mut self, campaign: &str) -> Vec<(&String, &mut Entry<T>)> {
        let mut list: Vec<_> = self
            .entries
            .iter_mut()
            .filter(|(_, e)| campaign.is_empty() || e.campaign == campaign)
            .collect();
        list.sort_by_key(|(_, e)| e.seq);
        list
    }

    /// Every instance's data, in no order.
    pub(crate) fn extras_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.values_mut().map(|e| &mut e.extra)
    }

    /// The campaign's instances (all when `campaign` is empty), in creation order.
    fn sorted(&self, campaign: &str) -> Vec<(&String, &Entry<T>)> {
        let mut list: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| campaign.is_empty() || e.campaign == campaign)
            .collect();
        list.sort_by_key(|(_, e)| e.seq);
        list
    }
}

/// Fails with `INVALID_ARGUMENT` when a request names no campaign.
pub(crate) fn require_campaign(campaign: &str) -> Result<(), Status> {
    if campaign.is_empty() {
        Err(Status::invalid_argument("campaign is required"))
    } else {
        Ok(())
    }
}
