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
//! statement that succeeded ([`Conn::keep`]). A connection that saw an error, or whose
//! statement was dropped half way, is dropped into the pool, which tests it (and rolls back
//! what it left open). One idle for longer than [`WARM_FOR`] is tested before it is used
//! (the newest; the older ones go back to the pool), so after a database restart (which
//! takes longer than that) the dead connections are found by a test, not by a caller's
//! statement.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Postgres};

/// A connection used more recently than this is reused without a test.
pub(super) const WARM_FOR: Duration = Duration::from_millis(500);

/// A pool and the connections kept warm out of it.
pub(super) struct Warm {
    pool: PgPool,
    state: Mutex<State>,
}

/// A connection kept warm, with when it was last used and when it left the pool.
struct Idle {
    conn: PoolConnection<Postgres>,
    used: Instant,
    taken: Instant,
}

#[derive(Default)]
struct State {
    /// Most recently used last. Never more than the connections checked out of the pool.
    idle: Vec<Idle>,
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

    /// A connection: a warm one if there is one; else the newest cold one if it answers
    /// a test; else one from the pool (tested there).
    pub(super) async fn get(&self) -> Result<Conn<'_>, sqlx::Error> {
        loop {
            let cold = {
                let mut state = self.state.lock().expect("warm connections lock");
                match state.idle.pop() {
                    Some(idle) if idle.used.elapsed() < WARM_FOR => {
                        return Ok(Conn::new(idle.conn, idle.taken, self));
                    }
                    // The newest is cold, so all are: the older ones go back to the pool.
                    Some(idle) => Some((idle, state.idle.drain(..).collect::<Vec<_>>())),
                    // Counted as waiting under the lock that found none, so every
                    // connection finished from now on goes to the pool and reaches this
                    // caller.
                    None => {
                        state.waiting += 1;
                        None
                    }
                }
            };
            let Some((mut idle, older)) = cold else {
                // Uncounted however the wait ends, a dropped future included.
                let _waiting = Waiting(self);
                let conn = self.pool.acquire().await?;
                return Ok(Conn::new(conn, Instant::now(), self));
            };
            drop(older);
            if idle.conn.ping().await.is_ok() {
                return Ok(Conn::new(idle.conn, idle.taken, self));
            }
            // Dead (the database restarted?): dropped into the pool, which closes it.
        }
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
    /// When it left the pool: a connection kept warm for longer than the pool's maximum
    /// lifetime goes back, so the pool can retire it.
    taken: Instant,
    home: &'a Warm,
}

impl<'a> Conn<'a> {
    fn new(conn: PoolConnection<Postgres>, taken: Instant, home: &'a Warm) -> Self {
        Conn {
            conn: Some(conn),
            taken,
            home,
        }
    }

    /// The statement succeeded and nothing is left open: keep the connection warm.
    pub(super) fn keep(mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let retire = self
            .home
            .pool
            .options()
            .get_max_lifetime()
            .is_some_and(|max| self.taken.elapsed() > max);
        let mut state = self.home.state.lock().expect("warm connections lock");
        if state.waiting == 0 && !retire {
            state.idle.push(Idle {
                conn,
                used: Instant::now(),
                taken: self.taken,
            });
        }
        // Otherwise dropped (after the lock): back to the pool, to a caller waiting there
        // or to be retired.
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
