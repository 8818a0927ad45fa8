//! [`Warm`]: connections kept out of the sqlx pool between statements, so a statement
//! costs one round trip instead of three.
//!
//! sqlx tests a pooled connection with a round trip (a `Sync`, answered by the server
//! process) every time it goes back to the pool, and, unless told not to, again when it is
//! taken out. A one-row claim was therefore three round trips and three wake-ups of its
//! server process; on an idle worker each wake-up is tens of microseconds of a cold CPU.
//!
//! The store takes connections from here instead: the most recently used first, with no
//! test if it was used within [`WARM_FOR`], and puts them back here, untested, after a
//! statement that succeeded ([`Conn::keep`]). Everything else goes through the pool and its
//! tests: a connection that saw an error, or whose statement was dropped half way, is
//! dropped into the pool, which tests it (and rolls back what it left open); one idle for
//! longer than [`WARM_FOR`] is handed back to the pool and taken out again tested, so
//! after a database restart (which takes longer than that) the dead connections are found
//! by the pool's test, not by a caller's statement.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};

/// A connection used more recently than this is reused without a test.
pub(super) const WARM_FOR: Duration = Duration::from_millis(500);

/// A pool and the connections kept warm out of it (at most the pool's size).
pub(super) struct Warm {
    pool: PgPool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Most recently used last.
    idle: Vec<(PoolConnection<Postgres>, Instant)>,
    /// Callers waiting on the pool. While there are any, a finished connection goes back
    /// to the pool (where they wait for it), not here.
    waiting: usize,
}

impl Warm {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            state: Mutex::default(),
        }
    }

    /// A connection: a warm one if there is one, else one from the pool (tested).
    pub(super) async fn get(&self) -> Result<Conn<'_>, sqlx::Error> {
        let cold = {
            let mut state = self.state.lock().expect("warm connections lock");
            match state.idle.pop() {
                Some((conn, at)) if at.elapsed() < WARM_FOR => {
                    return Ok(Conn {
                        conn: Some(conn),
                        home: self,
                    });
                }
                // The newest is cold, so all are: back to the pool, which tests them when
                // they are taken out again.
                Some(cold) => {
                    state.waiting += 1;
                    std::iter::once(cold).chain(state.idle.drain(..)).collect()
                }
                None => {
                    state.waiting += 1;
                    Vec::new()
                }
            }
        };
        drop(cold);
        // Counted as waiting (under the same lock that found no warm connection), so a
        // connection finished from now on goes to the pool and reaches this caller. The
        // guard uncounts it however the wait ends, a dropped future included.
        let _waiting = Waiting(self);
        let conn = self.pool.acquire().await?;
        Ok(Conn {
            conn: Some(conn),
            home: self,
        })
    }
}

/// One caller counted in [`State::waiting`] until dropped.
struct Waiting<'a>(&'a Warm);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.state.lock().expect("warm connections lock").waiting -= 1;
    }
}

/// A connection taken from [`Warm`]. Dropped, it goes back to the pool (tested there);
/// [`Conn::keep`] puts it back warm.
pub(super) struct Conn<'a> {
    conn: Option<PoolConnection<Postgres>>,
    home: &'a Warm,
}

impl Conn<'_> {
    /// The statement succeeded and nothing is left open: keep the connection warm.
    pub(super) fn keep(mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut state = self.home.state.lock().expect("warm connections lock");
        if state.waiting == 0
            && state.idle.len() < self.home.pool.options().get_max_connections() as usize
        {
            state.idle.push((conn, Instant::now()));
        }
        // Otherwise dropped (after the lock): back to the pool, to a caller waiting there.
    }
}

impl Deref for Conn<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a connection until kept")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a connection until kept")
    }
}
