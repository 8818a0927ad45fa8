//! What a guest can make long or odd, made storable before any driver sees it: messages
//! cut to [`crate::text::MAX_MESSAGE_BYTES`], NUL characters replaced. Both stores then
//! write the same, so a job reads back alike on either.

use std::borrow::Cow;

use crate::queue::{Finish, JobError, Outcome, Progress};

/// `error` as a store writes it: its message cut to [`crate::text::MAX_MESSAGE_BYTES`]
/// whatever the worker sent, so no guest can make a row (or a listing) too big.
pub(super) fn bounded(error: &JobError) -> JobError {
    let message = storable(&error.message).into_owned();
    JobError::new(error.kind, crate::text::cap_message(message))
}

/// `text` with each NUL replaced by U+FFFD: PostgreSQL's text and JSON cannot hold a NUL
/// and refuse the whole statement, and a guest's log or message may carry one.
pub(super) fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// `progress` with a storable note ([`storable`]).
pub(super) fn storable_progress(progress: &Progress) -> Progress {
    Progress {
        percent: progress.percent,
        note: progress.note.as_deref().map(|n| storable(n).into_owned()),
    }
}

/// A finish report as a driver writes it: its error bounded, its log and progress storable.
pub(super) fn finish(mut item: Finish) -> Finish {
    match &mut item.outcome {
        Outcome::Retry { error, .. } | Outcome::Fail { error } => *error = bounded(error),
        Outcome::Complete { .. } | Outcome::Release | Outcome::Cancelled => {}
    }
    if let Cow::Owned(log) = storable(&item.log) {
        item.log = log;
    }
    item.progress = item.progress.as_ref().map(storable_progress);
    item
}
