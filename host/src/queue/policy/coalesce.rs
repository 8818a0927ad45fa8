//! Coalescing in the core: what a key allows beside it, and a batch's items of one key
//! folded into one job before the driver stores it (a statement may touch a row once).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::queue::{Dependency, Enqueued, NewJob, StoreError};

/// Refuses a batch with a coalescing job out of bounds, or one that also has an
/// idempotency key or a run time: the key would answer an old job, and the window sets
/// the run time.
pub(super) fn check(jobs: &[NewJob]) -> Result<(), StoreError> {
    for job in jobs {
        let Some(coalesce) = &job.coalesce else {
            continue;
        };
        coalesce.check()?;
        if job.idempotency_key.is_some() {
            return Err(StoreError::Invalid(
                "a job with a `coalesce_key` takes no `idempotency_key`".into(),
            ));
        }
        if job.run_at.is_some() {
            return Err(StoreError::Invalid(
                "a job with a `coalesce_key` takes no `run_at`: `coalesce_ms` sets when it runs"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Where each item of a folded batch went: the index of its job in the folded batch, and
/// whether an earlier item of the batch had its key (it coalesced whatever the store says).
pub(super) struct Fold {
    slots: Vec<(usize, bool)>,
}

/// `jobs` with the items of each (tenant, coalesce key) folded into one job at the key's
/// first place: the last item's fields (latest wins) under the first item's cap. `None`
/// for a batch without coalescing jobs, which goes to the driver as it is.
pub(super) fn fold(jobs: Vec<NewJob>) -> (Vec<NewJob>, Option<Fold>) {
    if jobs.iter().all(|job| job.coalesce.is_none()) {
        return (jobs, None);
    }
    let mut folded: Vec<NewJob> = Vec::with_capacity(jobs.len());
    let mut slots = Vec::with_capacity(jobs.len());
    let mut places: HashMap<(String, String), usize> = HashMap::new();
    for mut job in jobs {
        let Some(key) = job.coalesce.as_ref().map(|c| c.key.clone()) else {
            slots.push((folded.len(), false));
            folded.push(job);
            continue;
        };
        match places.entry((job.tenant.clone(), key)) {
            Entry::Occupied(place) => {
                let held = &mut folded[*place.get()];
                let cap = held.coalesce.as_ref().and_then(|c| c.max);
                if let Some(coalesce) = job.coalesce.as_mut() {
                    coalesce.max = cap;
                }
                *held = job;
                slots.push((*place.get(), true));
            }
            Entry::Vacant(place) => {
                place.insert(folded.len());
                slots.push((folded.len(), false));
                folded.push(job);
            }
        }
    }
    (folded, Some(Fold { slots }))
}

impl Fold {
    /// Points each dependency on an earlier item of the batch at that item's job in the
    /// folded batch (a dependent has no coalesce key, so its own place only moves up).
    pub(super) fn remap(&self, jobs: &mut [NewJob]) {
        for dependency in jobs.iter_mut().flat_map(|job| job.depends_on.iter_mut()) {
            if let Dependency::Earlier(at) = dependency {
                *at = self.slots[*at].0;
            }
        }
    }

    /// The answer of each item of the batch, from the answers of the folded batch.
    pub(super) fn unfold(&self, answers: Vec<Enqueued>) -> Result<Vec<Enqueued>, StoreError> {
        self.slots
            .iter()
            .map(|&(i, later)| {
                let mut answer = answers.get(i).cloned().ok_or_else(|| {
                    StoreError::Database("a job of the batch was not answered".into())
                })?;
                answer.coalesced |= later;
                Ok(answer)
            })
            .collect()
    }
}
