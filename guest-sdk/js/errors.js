// How a task fails: thrown from a handler, these decide what happens to the job.

/** Fails this attempt; the job is retried with backoff while attempts remain. */
export class Retry extends Error {
  constructor(message) {
    super(message);
    this.name = "Retry";
  }
}

/** Fails the job at once, whatever attempts remain. */
export class Fatal extends Error {
  constructor(message) {
    super(message);
    this.name = "Fatal";
  }
}
