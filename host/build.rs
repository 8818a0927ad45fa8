fn main() {
    // sqlx::migrate! embeds host/migrations (PostgreSQL) and host/migrations-sqlite;
    // rebuild when a migration is added to either.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations-sqlite");
}
