//! Dependencies between jobs: the vocabulary, and the plan both drivers write when a batch
//! with dependencies is stored.
//!
//! A job enqueued with [`NewJob::depends_on`] is `waiting` while any job it depends on is
//! unfinished. Its row counts those (`deps_pending`) and each pending edge is a row of
//! `wasmq_job_deps`; the finish for good of a dependency deletes its edges and, for a
//! completion, takes one from each dependent's count under the dependent's row lock, so
//! exactly one finish sees the count reach 0 and makes it due. A failure or cancellation
//! cancels the waiting dependents (`dependency_failed`), and theirs, in the same
//! transaction. Dependencies name stored jobs of the same tenant (or earlier jobs of the
//! batch), so there is no cycle.

use std::collections::{BTreeSet, HashMap};

use super::rows::Columns;
use super::{Enqueued, ErrorKind, JobError, JobState, NewJob, StoreError};

/// At most this many dependencies per job.
pub const MAX_DEPENDENCIES: usize = 10_000;

/// A job another waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    /// A stored job, by id.
    Job(i64),
    /// The job at this index of the same batch, which must come earlier.
    Earlier(usize),
}

/// Refuses a batch whose dependencies cannot be met: an index not earlier in the batch,
/// too many, or a coalescing job with dependencies (it would gather enqueues it does not
/// wait for).
pub fn check(jobs: &[NewJob]) -> Result<(), StoreError> {
    for (i, job) in jobs.iter().enumerate() {
        if job.depends_on.len() > MAX_DEPENDENCIES {
            return Err(StoreError::Invalid(format!(
                "a job may depend on at most {MAX_DEPENDENCIES} jobs"
            )));
        }
        if job.coalesce.is_some() && !job.depends_on.is_empty() {
            return Err(StoreError::Invalid(
                "a job with a `coalesce_key` cannot have dependencies".into(),
            ));
        }
        if let Some(Dependency::Earlier(at)) = job
            .depends_on
            .iter()
            .find(|d| matches!(d, Dependency::Earlier(at) if *at >= i))
        {
            return Err(StoreError::Invalid(format!(
                "jobs[{i}] depends on jobs[{at}]: a job may depend only on earlier jobs of \
                 its batch"
            )));
        }
    }
    Ok(())
}

/// Whether any job of `jobs` has dependencies.
pub fn any(jobs: &[NewJob]) -> bool {
    jobs.iter().any(|job| !job.depends_on.is_empty())
}

/// The ids of the jobs a new job of the batch depends on (ascending, each once), with
/// earlier jobs of the batch resolved through `answers`.
fn resolved(job: &NewJob, answers: &[Enqueued]) -> BTreeSet<i64> {
    job.depends_on
        .iter()
        .map(|d| match *d {
            Dependency::Job(id) => id,
            Dependency::Earlier(at) => answers[at].job.id,
        })
        .collect()
}

/// Every job the new jobs of a stored batch depend on: what the driver locks (ascending
/// ids, the order that keeps two enqueues from deadlocking) and reads before [`plan`].
pub fn parents(jobs: &[NewJob], answers: &[Enqueued]) -> Vec<i64> {
    let mut all = BTreeSet::new();
    for (job, answer) in jobs.iter().zip(answers) {
        if is_new(answer) {
            all.extend(resolved(job, answers));
        }
    }
    all.into_iter().collect()
}

fn is_new(answer: &Enqueued) -> bool {
    !answer.duplicate && !answer.coalesced
}

/// A job a new job depends on, as read under its row lock.
#[derive(Debug, Clone)]
pub struct Parent {
    /// Its tenant: a dependency is on a job of the same tenant only.
    pub tenant: String,
    /// Its state when locked.
    pub state: JobState,
}

/// What attaching a batch's dependencies changes in one stored row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// The job.
    pub id: i64,
    /// New jobs of the batch that depend on it.
    pub dependents_added: u32,
    /// For a new job with dependencies: its own part.
    pub dependent: Option<Dependent>,
}

/// A new job with dependencies, as it is to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependent {
    /// `waiting`, `cancelled`, or `None`: as inserted (every dependency completed).
    pub state: Option<JobState>,
    /// Its unfinished dependencies.
    pub pending: u32,
    /// The ids it depends on, ascending.
    pub depends_on: Vec<i64>,
    /// Why it was cancelled at once.
    pub error: Option<JobError>,
}

/// What a driver writes for a batch's dependencies, in one transaction with the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// One per job whose row changes, ascending ids.
    pub rows: Vec<RowChange>,
    /// `(depends_on, job_id)` of each unfinished dependency: the pending edges.
    pub edges: Vec<(i64, i64)>,
}

/// The plan for a stored batch from `rows` (`id`, `tenant`, `state`): the jobs of
/// [`parents`] as the driver locked and read them. See [`plan`].
pub fn plan_from_rows<'r, R: Columns + 'r>(
    jobs: &[NewJob],
    answers: &[Enqueued],
    rows: impl IntoIterator<Item = &'r R>,
) -> Result<Plan, StoreError> {
    let mut parents = HashMap::new();
    for row in rows {
        let parent = Parent {
            tenant: row.text("tenant")?,
            state: row.text("state")?.parse()?,
        };
        parents.insert(row.big("id")?, parent);
    }
    plan(jobs, answers, &parents)
}

/// The plan for a stored batch: `parents` are the jobs of [`parents`] as locked. A job
/// depending on one that failed or was cancelled is cancelled at once; one whose
/// dependencies all completed stays as inserted; any other waits, with an edge per
/// unfinished dependency. [`StoreError::Invalid`] for an unknown id or another tenant's.
pub fn plan(
    jobs: &[NewJob],
    answers: &[Enqueued],
    parents: &HashMap<i64, Parent>,
) -> Result<Plan, StoreError> {
    // The state of each job as this plan leaves it: the batch's own dependents change.
    let mut states: HashMap<i64, JobState> = parents
        .iter()
        .map(|(id, parent)| (*id, parent.state))
        .collect();
    let mut rows: std::collections::BTreeMap<i64, RowChange> = Default::default();
    let mut edges = Vec::new();
    for (job, answer) in jobs.iter().zip(answers) {
        if !is_new(answer) || job.depends_on.is_empty() {
            continue;
        }
        let child = answer.job.id;
        let ids = resolved(job, answers);
        let mut pending = 0u32;
        let mut failed = None;
        for &id in &ids {
            let state = match parents.get(&id) {
                Some(parent) if parent.tenant == job.tenant => states[&id],
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "job {id}, which a job depends on, does not exist"
                    )));
                }
            };
            rows.entry(id)
                .or_insert_with(|| RowChange {
                    id,
                    dependents_added: 0,
                    dependent: None,
                })
                .dependents_added += 1;
            match state {
                JobState::Completed => {}
                JobState::Failed | JobState::Cancelled => {
                    failed.get_or_insert((id, state));
                }
                _ => {
                    pending += 1;
                    edges.push((id, child));
                }
            }
        }
        let (state, error) = match failed {
            Some((id, state)) => {
                edges.retain(|&(_, c)| c != child);
                pending = 0;
                (
                    Some(JobState::Cancelled),
                    Some(dependency_failed(id, state)),
                )
            }
            None if pending > 0 => (Some(JobState::Waiting), None),
            None => (None, None),
        };
        if let Some(state) = state {
            states.insert(child, state);
        }
        rows.entry(child)
            .or_insert_with(|| RowChange {
                id: child,
                dependents_added: 0,
                dependent: None,
            })
            .dependent = Some(Dependent {
            state,
            pending,
            depends_on: ids.into_iter().collect(),
            error,
        });
    }
    Ok(Plan {
        rows: rows.into_values().collect(),
        edges,
    })
}

/// The error of a job cancelled because job `id` ended in `state` (failed or cancelled).
pub fn dependency_failed(id: i64, state: JobState) -> JobError {
    let what = if state == JobState::Failed {
        "failed"
    } else {
        "was cancelled"
    };
    JobError::new(
        ErrorKind::DependencyFailed,
        format!("job {id}, which it depends on, {what}"),
    )
}

/// What the finish for good of jobs did to their dependents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Released {
    /// The queue of each dependent that became `available`.
    pub available: Vec<String>,
    /// Dependents cancelled (`dependency_failed`), down the chain.
    pub cancelled: Vec<i64>,
}

impl Released {
    /// Adds `other`'s jobs to these.
    pub fn extend(&mut self, other: Released) {
        self.available.extend(other.available);
        self.cancelled.extend(other.cancelled);
    }
}

/// Puts the rows a plan rewrote (whole jobs) into the batch's answers, each answer of the
/// same job.
pub fn answer_with<'r, R: Columns + 'r>(
    answers: &mut [Enqueued],
    rows: impl IntoIterator<Item = &'r R>,
) -> Result<(), StoreError> {
    let by_id: HashMap<i64, super::Job> = rows
        .into_iter()
        .map(|row| super::rows::job_from_row(row).map(|job| (job.id, job)))
        .collect::<Result<_, _>>()?;
    for answer in answers {
        if let Some(job) = by_id.get(&answer.job.id) {
            answer.job = job.clone();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Job;

    fn answer(id: i64) -> Enqueued {
        let job = Job::just_enqueued(
            NewJob::new("m", b""),
            id,
            "d".into(),
            JobState::Available,
            chrono::Utc::now(),
            chrono::Utc::now(),
        );
        Enqueued {
            job,
            duplicate: false,
            coalesced: false,
        }
    }

    fn parent(state: JobState) -> Parent {
        Parent {
            tenant: crate::queue::DEFAULT_TENANT.into(),
            state,
        }
    }

    /// A chain within a batch over a failed stored job: both are cancelled, and no edge
    /// is left; a job on a running one waits with one edge.
    #[test]
    fn a_batch_chain_inherits_its_first_jobs_fate() {
        let on = |deps: Vec<Dependency>| NewJob {
            depends_on: deps,
            ..NewJob::new("m", b"")
        };
        let jobs = vec![
            on(vec![Dependency::Job(1)]),
            on(vec![Dependency::Earlier(0)]),
            on(vec![Dependency::Job(2), Dependency::Job(2)]),
        ];
        let answers = vec![answer(10), answer(11), answer(12)];
        let mut parents = HashMap::from([
            (1, parent(JobState::Failed)),
            (2, parent(JobState::Running)),
        ]);
        parents.insert(10, parent(JobState::Available));
        assert_eq!(super::parents(&jobs, &answers), vec![1, 2, 10]);
        let plan = plan(&jobs, &answers, &parents).unwrap();
        let state = |id| {
            plan.rows
                .iter()
                .find(|r| r.id == id)
                .unwrap()
                .dependent
                .as_ref()
                .unwrap()
                .state
        };
        assert_eq!(state(10), Some(JobState::Cancelled));
        assert_eq!(state(11), Some(JobState::Cancelled));
        assert_eq!(state(12), Some(JobState::Waiting));
        assert_eq!(plan.edges, vec![(2, 12)]);
        let unknown = HashMap::from([(1, parent(JobState::Completed))]);
        assert!(plan_err(&jobs, &answers, &unknown));
    }

    fn plan_err(jobs: &[NewJob], answers: &[Enqueued], parents: &HashMap<i64, Parent>) -> bool {
        matches!(plan(jobs, answers, parents), Err(StoreError::Invalid(_)))
    }

    #[test]
    fn only_earlier_jobs_of_a_batch_may_be_depended_on() {
        let mut job = NewJob::new("m", b"");
        job.depends_on = vec![Dependency::Earlier(0)];
        assert!(check(&[job.clone()]).is_err());
        assert!(check(&[NewJob::new("m", b""), job]).is_ok());
    }
}
