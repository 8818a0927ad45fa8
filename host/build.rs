fn main() {
    // sqlx::migrate! embeds host/migrations; rebuild when a migration is added.
    println!("cargo:rerun-if-changed=migrations");
}
